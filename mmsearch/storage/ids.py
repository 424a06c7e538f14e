"""Deterministic point ids: the same item id always lands on the same Qdrant point.

Qdrant point ids are unsigned integers or UUIDs; item ids are free-form strings. Each item id maps
to `uuid5(ITEM_NAMESPACE, item_id)`, so indexing an item again overwrites its point instead of
adding a duplicate, on every backend and every machine. The namespace is fixed forever (changing
it would orphan every stored point); it is itself `uuid5(NAMESPACE_URL, ITEM_NAMESPACE_URL)`.
The item id is also kept in the payload under `ITEM_ID_KEY`, since a UUID cannot be turned back.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Any

from mmsearch.errors import InvalidItemError

ITEM_NAMESPACE_URL = "https://mmsearch.invalid/item-id"
ITEM_NAMESPACE = uuid.UUID("9bc4ad47-2042-5aaf-913d-9bc1fd12c044")
ITEM_ID_KEY = "item_id"
# Payload keys starting with this are mmsearch's own bookkeeping (e.g. the indexer's content hash):
# `Store` leaves them out of what it returns unless asked (`internal=True`).
INTERNAL_PREFIX = "_mmsearch"
MAX_ITEM_ID_LENGTH = 1024


def is_internal_key(key: str) -> bool:
    """Whether a payload key is mmsearch's own (`item_id`, `_mmsearch_*`), not a catalog field."""
    return key == ITEM_ID_KEY or key.startswith(INTERNAL_PREFIX)


def check_item_id(item_id: object) -> str:
    """Return `item_id` if it is a usable item id.

    Raises:
        InvalidItemError: not a string, empty, or longer than `MAX_ITEM_ID_LENGTH`.
    """
    if not isinstance(item_id, str):
        raise InvalidItemError(f"item id {item_id!r} is a {type(item_id).__name__}; item ids are strings")
    if not item_id or len(item_id) > MAX_ITEM_ID_LENGTH:
        raise InvalidItemError(
            f"item id {item_id[:80]!r} has {len(item_id)} characters; item ids have 1 to {MAX_ITEM_ID_LENGTH}"
        )
    return item_id


def point_id(item_id: str) -> str:
    """The Qdrant point id (a UUID string) of an item id.

    Raises:
        InvalidItemError: `item_id` is not a non-empty string.
    """
    if isinstance(item_id, str) and 0 < len(item_id) <= MAX_ITEM_ID_LENGTH:
        return _point_id(item_id)
    return _point_id(check_item_id(item_id))  # check_item_id raises here


@lru_cache(maxsize=1 << 18)
def _point_id(item_id: str) -> str:
    # Cached: hybrid queries name their candidates by id in several filters per query, and a uuid5
    # (a SHA-1) per id per filter costs more than the engine's search itself.
    return str(uuid.uuid5(ITEM_NAMESPACE, item_id))


def id_order(point: Any) -> Any:
    """A sort key for a point id in either engine's own type: a `uuid.UUID` orders by its integer.

    Sorting UUID objects directly runs their Python `__lt__` n log n times, which costs more than
    a fused query's search of its candidates.
    """
    return point.int if isinstance(point, uuid.UUID) else point
