"""A backend that reports how long each engine call took: the store time of the HTTP service's metrics.

`Store.observe(callback)` wraps the store's backend in `ObservedBackend`; every call of a
`Backend` method then ends with `callback(operation, seconds)`, whether it returned or raised.
Timing the backend (not `Store`) measures the engine alone, without mmsearch's own validation
and pooling around it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mmsearch.storage.base import Backend

Observer = Callable[[str, float], None]

# The `Backend` methods that reach the engine; properties and `sidecar_folder` are not timed.
TIMED_OPERATIONS = frozenset(
    {
        "create",
        "extend",
        "upsert",
        "update_vectors",
        "delete_ids",
        "delete_filter",
        "count",
        "retrieve",
        "scroll",
        "query",
        "nearest_ids",
        "score_points",
        "having",
        "delete_vectors",
        "optimize",
    }
)


class ObservedBackend:
    """`inner` with every engine call timed.

    Args:
        inner: the backend doing the work.
        observe: called with the operation's name and its wall time in seconds.
    """

    def __init__(self, inner: Backend, observe: Observer) -> None:
        self._inner = inner
        self._observe = observe

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in TIMED_OPERATIONS:
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self._observe(name, time.perf_counter() - start)

        return timed


__all__ = ["TIMED_OPERATIONS", "ObservedBackend", "Observer"]
