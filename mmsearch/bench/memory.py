"""Memory figures of the benchmarks: peak resident set, anonymous memory, the peak inside a block.

The resident set counts memory-mapped files (model weights, a store's vector files), whose pages
the kernel may drop at any moment on a busy machine; the anonymous part (heap, numpy arrays) is
what must fit in RAM. A peak taken from the resident set alone can therefore come out below what
a block allocated, when mapped pages are dropped while it runs: `peak_memory` also reads the
anonymous memory, sampled. Both miss a block that glibc serves from free heap pages the process
still holds (what earlier work freed), so `peak_memory` first hands those back to the system.
"""

from __future__ import annotations

import contextlib
import gc
import resource
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

_STATUS = Path("/proc/self/status")


def rss_peak() -> int:
    """The process's peak resident set in bytes, mapped files included (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _status(key: str) -> int | None:
    """One field of /proc/self/status in bytes, or None where there is none (off Linux)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def anon_rss() -> int | None:
    """The process's anonymous resident memory in bytes (not memory-mapped files), or None off Linux."""
    return _status("RssAnon")


class AnonPeak:
    """The peak of `RssAnon` while the `with` block runs, sampled every `interval` seconds and at both ends."""

    def __init__(self, interval: float = 0.5) -> None:
        self.start = anon_rss() or 0
        self.peak = self.start
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, anon_rss() or 0)

    def __enter__(self) -> AnonPeak:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, anon_rss() or 0)


def _fresh_heap() -> None:
    """Make glibc give the block's memory pages that are not resident yet, so that its peak shows.

    Two ways it would otherwise serve a block from pages the process already holds: from free
    chunks inside the heap, which glibc keeps resident (`malloc_trim(0)` hands their pages back
    to the system), and, for big blocks, from the heap at all, after large frees raised glibc's
    mmap threshold (pinned to 1 MiB: every block that size or more gets its own mapping).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(name)
            libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
            libc.malloc_trim(0)


@contextlib.contextmanager
def peak_memory() -> Iterator[list[float]]:
    """Peak MiB allocated inside the block; off Linux, numpy's traced peak.

    On Linux the larger of two lower bounds: the resident set's peak (VmHWM, reset at the start)
    above the start, which sees a peak however short but loses whatever mapped pages the kernel
    dropped meanwhile, and the anonymous memory's peak above the start, sampled every 10 ms and
    at the end, which no dropped file page lowers but which can miss a peak between samples.
    The garbage of earlier work is collected first: a collection that the block's allocations
    set off would otherwise free it inside the block and hide as much of what the block holds.
    """
    out: list[float] = []
    gc.collect()
    _fresh_heap()
    try:
        with open("/proc/self/clear_refs", "w") as f:  # "5" resets the peak resident set (VmHWM)
            f.write("5")
        before = _status("VmRSS")
    except OSError:
        before = None
    if before is None:
        tracemalloc.start()
        try:
            yield out
            out.append(tracemalloc.get_traced_memory()[1] / 2**20)
        finally:
            tracemalloc.stop()
        return
    with AnonPeak(interval=0.01) as anon:
        yield out
    hwm = _status("VmHWM") or before
    out.append(max(hwm - before, anon.peak - anon.start) / 2**20)


__all__ = ["AnonPeak", "anon_rss", "peak_memory", "rss_peak"]
