"""Latency helpers the benchmarks share: timing a call per input, and percentiles in milliseconds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np


def ms_percentile(seconds: Sequence[float], q: float) -> float:
    """The `q`-th percentile of durations given in seconds, in milliseconds (NaN for none)."""
    return float(np.percentile(np.asarray(seconds) * 1e3, q)) if len(seconds) else float("nan")


def time_calls(
    fn: Callable[[int], Any], indices: Iterable[int], warmup: Iterable[int] = ()
) -> tuple[list[float], list[Any]]:
    """Each call's wall time in seconds and its result, for `fn(i)` over `indices`.

    `fn` runs untimed on the `warmup` indices first: give it inputs of their own, as a call
    replaying one just made would find its data in the CPU caches.
    """
    for i in warmup:
        fn(i)
    times, outs = [], []
    for i in indices:
        start = time.perf_counter()
        outs.append(fn(i))
        times.append(time.perf_counter() - start)
    return times, outs


__all__ = ["ms_percentile", "time_calls"]
