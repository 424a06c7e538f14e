"""`peak_memory` sees what a block allocates, whatever the process did before or does meanwhile."""

from __future__ import annotations

import gc
import mmap
import time
from pathlib import Path

import numpy as np

from mmsearch.bench.memory import AnonPeak, anon_rss, peak_memory, rss_peak


def test_peak_memory_sees_an_array_allocated_inside() -> None:
    with peak_memory() as peak:
        block = np.ones((3000, 3000))
    assert peak[0] >= 60 and block.sum() > 0


def test_peak_memory_holds_when_earlier_garbage_is_collected_inside() -> None:
    # what an earlier test leaves behind: a reference cycle holding a large array, freed only when
    # a collection runs, which the block's own allocations may set off
    cycle: list[object] = [np.ones((4000, 4000))]
    cycle.append(cycle)
    del cycle
    with peak_memory() as peak:
        gc.collect()
        block = np.ones((3000, 3000))
    assert peak[0] >= 60 and block.sum() > 0


def test_peak_memory_holds_when_mapped_pages_leave_the_resident_set(tmp_path: Path) -> None:
    # what a busy machine does: the kernel drops a mapped file's pages (model weights, vector
    # files) while the block runs, so the resident set falls as much as the block allocates
    data = tmp_path / "mapped"
    data.write_bytes(b"\1" * (128 << 20))
    with data.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert sum(mapped[i] for i in range(0, len(mapped), 4096)) > 0  # resident now
        with peak_memory() as peak:
            mapped.madvise(mmap.MADV_DONTNEED)
            block = np.ones((3000, 3000))
    assert peak[0] >= 60 and block.sum() > 0


def test_peak_memory_holds_when_free_heap_pages_are_resident() -> None:
    with peak_memory():  # from here on, blocks of 1 MiB or more get their own mapping
        pass
    chunks = [np.ones(112_500) for _ in range(100)]  # 900 KB each: from the heap, below that threshold
    keep = np.ones(60_000)  # allocated after them, so the heap's top stays in use when they are freed
    del chunks  # 90 MB of free chunks inside the heap, still resident: glibc serves the next block from them
    with peak_memory() as peak:
        block = np.ones((3000, 3000))
    assert peak[0] >= 60 and block.sum() > 0 and keep.sum() > 0


def test_anon_peak_samples_a_peak_freed_before_the_end() -> None:
    # a private anonymous mapping of its own (a shared one counts as RssShmem): fresh pages,
    # whatever free memory the heap holds
    with AnonPeak(interval=0.01) as anon:
        block = mmap.mmap(-1, 72 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        block.write(b"\1" * (72 << 20))
        time.sleep(0.1)  # ten samples
        block.close()
    assert anon.peak - anon.start >= 60 * 2**20
    now = anon_rss()
    assert now is not None and now - anon.start < 30 * 2**20  # freed: only a sample saw the peak
    assert rss_peak() >= anon.peak
