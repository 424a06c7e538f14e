"""Store benchmark: upsert throughput, HNSW build time, kNN and MaxSim latency, recall@10.

Synthetic catalogue (clustered, like real embeddings, unit-normalised, `dim`-d):
- every item has one text vector (`bench.text`: pooled, HNSW-indexed; with one row per item,
  `bench.text.multi` is never created: the pooled vector serves MaxSim);
- a subset (`multi_items`) also has `multi_rows` photos (`bench.image`: pooled, plus a MaxSim
  multivector kept out of HNSW, m=0, as rescoring vectors are).
kNN queries go to `bench.text` (HNSW, and exact for recall@10); MaxSim queries (2 rows) to
`bench.image.multi`. Queries are noisy copies of random items.

Edge runs on all items; local mode (`memory`: pure Python, exact) on the first `memory_items` with
fewer queries, as it is orders of magnitude slower.

The Edge folder's size on disk after closing (allocated blocks), per item and per named vector,
comes with the figures.

Run: `mmsearch bench store --items 20000` (default 100,000 items).
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from indexers.protocol import EncoderSpec
from mmsearch.bench.vectors import noisy, unit
from mmsearch.storage import HnswSettings, Item, NearestQuery, Store, StoreSettings, open_store

_log = logging.getLogger(__name__)


def bench_encoders(dim: int) -> list[EncoderSpec]:
    """Stand-in encoder specs for the synthetic catalogue (no model is loaded)."""
    return [
        EncoderSpec("bench", "bert", "text", dim, "cosine", f"bench-text-{dim}"),
        EncoderSpec("bench", "clip", "image", dim, "cosine", f"bench-image-{dim}"),
    ]


class StoreBenchConfig(BaseModel):
    """What to measure.

    Attributes:
        items: catalogue size for Edge.
        dim: vector size.
        multi_items: items that also get `multi_rows` photos (the MaxSim subset).
        multi_rows: photos per item in the subset.
        queries: kNN and MaxSim queries timed on Edge.
        memory_items: catalogue size for local mode (0 skips it).
        memory_queries: queries timed on local mode.
        batch: items per upsert call.
        hnsw: graph parameters.
        seed: random seed.
        uniform: draw item vectors uniformly on the sphere instead of around cluster centres (the
            hardest case for HNSW; real embeddings are clustered).
        path: folder for the Edge store (default: a temporary one).
    """

    model_config = ConfigDict(extra="forbid")

    items: int = Field(100_000, ge=100)
    dim: int = Field(512, ge=2)
    multi_items: int | None = Field(None, ge=0)
    multi_rows: int = Field(4, ge=1)
    queries: int = Field(200, ge=1)
    memory_items: int | None = Field(None, ge=0)
    memory_queries: int = Field(10, ge=1)
    batch: int = Field(2_000, ge=1)
    hnsw: HnswSettings = HnswSettings()
    seed: int = 0
    uniform: bool = False
    path: Path | None = None


@dataclass
class BackendFigures:
    """Figures for one backend; latencies in milliseconds."""

    backend: str
    items: int
    multi_items: int
    upsert_items_per_s: float
    index_build_s: float | None
    knn_queries: int
    knn_p50_ms: float
    knn_p95_ms: float
    maxsim_queries: int
    maxsim_p50_ms: float
    maxsim_p95_ms: float
    exact_knn_p50_ms: float | None = None
    recall_at_10: float | None = None
    batch_knn_queries_per_s: float | None = None
    disk_bytes_per_item: float | None = None
    disk_vector_bytes: dict[str, int] | None = None


@dataclass
class StoreBenchResult:
    """What `run` measured.

    Attributes:
        config: the `StoreBenchConfig` as JSON.
        backends: the figures of each backend, Edge first.
        top10_agreement: the share of queries whose local-mode top 10 equals Edge's exact one (same
            points, same queries); None when local mode ran on fewer items.
    """

    config: dict[str, Any]
    backends: list[BackendFigures] = field(default_factory=list)
    top10_agreement: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The figures as a JSON-able dict."""
        return {
            "config": self.config,
            "backends": [asdict(b) for b in self.backends],
            "top10_agreement": self.top10_agreement,
        }


class _Data:
    """The synthetic catalogue and queries, built once and shared by both backends."""

    def __init__(self, cfg: StoreBenchConfig) -> None:
        rng = np.random.default_rng(cfg.seed)
        self.n = cfg.items
        self.n_multi = min(cfg.items, cfg.multi_items if cfg.multi_items is not None else cfg.items // 10)
        n_centers = cfg.items if cfg.uniform else max(16, cfg.items // 100)
        centers = unit(rng.standard_normal((n_centers, cfg.dim)).astype(np.float32))
        labels = np.arange(cfg.items) if cfg.uniform else rng.integers(0, n_centers, cfg.items)
        self.text = noisy(centers[labels], 1.0, rng)
        self.photos = noisy(np.repeat(centers[labels[: self.n_multi], None, :], cfg.multi_rows, axis=1), 1.2, rng)
        self.knn_queries = noisy(self.text[rng.integers(0, cfg.items, cfg.queries)], 0.5, rng)
        picks = rng.integers(0, max(1, self.n_multi), cfg.queries)
        self.maxsim_queries = noisy(self.photos[picks, :2] if self.n_multi else self.text[picks, None], 0.5, rng)

    def items(self, start: int, stop: int) -> list[Item]:
        out = []
        for i in range(start, stop):
            vectors: dict[str, np.ndarray] = {"bench.text": self.text[i : i + 1]}
            if i < self.n_multi:
                vectors["bench.image"] = self.photos[i]
            out.append(Item(id=f"item-{i}", vectors=vectors, payload={"group": i % 10}))
        return out


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _latencies(store: Store, queries: Sequence[NearestQuery]) -> tuple[list[float], list[list[str]]]:
    """Each query's latency in milliseconds, and its hits' ids."""
    times, ids = [], []
    for q in queries:
        dt, hits = _timed(functools.partial(store.query, q.vector, q.query, limit=q.limit, exact=q.exact))
        times.append(dt * 1000)
        ids.append([h.id for h in hits])
    return times, ids


def _allocated(files: Sequence[Path]) -> int:
    # Blocks, not lengths: Qdrant preallocates its chunk and WAL files at fixed lengths.
    return sum(f.stat().st_blocks * 512 for f in files if f.is_file())


def disk_usage(folder: Path) -> tuple[int, dict[str, int]]:
    """Bytes an Edge collection folder holds on disk, and those of each named vector's storage.

    A vector's storage sums its `vector_storage-<name>` folders over the shard's segments (the
    Edge layout); the WAL, payload, id tracker and HNSW graphs count in the total only.
    """
    total = _allocated(list(folder.rglob("*")))
    by_vector: dict[str, int] = {}
    for part in folder.rglob("vector_storage-*"):
        name = part.name.removeprefix("vector_storage-")
        by_vector[name] = by_vector.get(name, 0) + _allocated(list(part.rglob("*")))
    return total, dict(sorted(by_vector.items()))


def _pct(values: Sequence[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p))


def _measure(
    store: Store,
    data: _Data,
    n_items: int,
    n_queries: int,
    explicit_index: bool,
    batch: int,
    log: Callable[[str], None],
) -> tuple[BackendFigures, list[list[str]]]:
    kind = store.backend_kind
    t0 = time.perf_counter()
    for start in range(0, n_items, batch):
        store.upsert(data.items(start, min(n_items, start + batch)), optimize=False)
    upsert_s = time.perf_counter() - t0
    log(f"{kind}: upserted {n_items} items in {upsert_s:.1f} s")
    build_s = None
    if explicit_index:
        build_s, _ = _timed(store.optimize)
        log(f"{kind}: optimize (HNSW build) {build_s:.1f} s")
    knn = [NearestQuery("bench.text", q, limit=10) for q in data.knn_queries[:n_queries]]
    exact = [NearestQuery("bench.text", q, limit=10, exact=True) for q in data.knn_queries[:n_queries]]
    maxsim = [NearestQuery("bench.image.multi", q, limit=10) for q in data.maxsim_queries[:n_queries]]
    _latencies(store, knn[:3])  # warm caches
    knn_ms, knn_ids = _latencies(store, knn)
    log(f"{kind}: kNN p50 {_pct(knn_ms, 50):.2f} ms")
    maxsim_ms, _ = _latencies(store, maxsim)
    log(f"{kind}: MaxSim p50 {_pct(maxsim_ms, 50):.2f} ms")
    figures = BackendFigures(
        backend=kind,
        items=n_items,
        multi_items=min(n_items, data.n_multi),
        upsert_items_per_s=n_items / upsert_s,
        index_build_s=build_s,
        knn_queries=len(knn),
        knn_p50_ms=_pct(knn_ms, 50),
        knn_p95_ms=_pct(knn_ms, 95),
        maxsim_queries=len(maxsim),
        maxsim_p50_ms=_pct(maxsim_ms, 50),
        maxsim_p95_ms=_pct(maxsim_ms, 95),
    )
    if explicit_index:
        exact_ms, exact_ids = _latencies(store, exact)
        figures.exact_knn_p50_ms = _pct(exact_ms, 50)
        figures.recall_at_10 = float(
            np.mean([len(set(a) & set(e)) / 10 for a, e in zip(knn_ids, exact_ids, strict=True)])
        )
        dt, _ = _timed(lambda: store.query_batch(knn))
        figures.batch_knn_queries_per_s = len(knn) / dt
        return figures, exact_ids
    return figures, knn_ids  # local mode is exact


def run(config: StoreBenchConfig | None = None, log: Callable[[str], None] = _log.info) -> StoreBenchResult:
    """Build the synthetic catalogue in Edge (and local mode), time it, and return the figures.

    Args:
        config: what to measure (defaults: 100k items, 512-d, 10% with 4 photos).
        log: called with progress lines (default: this module's logger, at INFO).

    Returns:
        Figures per backend, plus the share of local-mode top-10 lists identical to Edge's exact ones.
    """
    cfg = config or StoreBenchConfig()
    data = _Data(cfg)
    result = StoreBenchResult(config=json.loads(cfg.model_dump_json()))
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-") as tmp:
        path = cfg.path or Path(tmp)
        edge_settings = StoreSettings(backend="edge", path=path, collection="bench", hnsw=cfg.hnsw, optimize_after=None)
        with open_store(edge_settings, encoders=bench_encoders(cfg.dim)) as store:
            edge, edge_exact_ids = _measure(store, data, cfg.items, cfg.queries, True, cfg.batch, log)
        total, edge.disk_vector_bytes = disk_usage(path / edge_settings.collection)  # closed: flushed
        edge.disk_bytes_per_item = total / cfg.items
        result.backends.append(edge)

        n_mem = cfg.items if cfg.memory_items is None else min(cfg.memory_items, cfg.items)
        if n_mem:
            nq = min(cfg.memory_queries, cfg.queries)
            mem_settings = StoreSettings(backend="memory", collection="bench")
            with open_store(mem_settings, encoders=bench_encoders(cfg.dim)) as store:
                mem, mem_ids = _measure(store, data, n_mem, nq, False, cfg.batch, log)
            result.backends.append(mem)
            if n_mem == cfg.items:
                result.top10_agreement = float(
                    np.mean([a == b for a, b in zip(edge_exact_ids[:nq], mem_ids, strict=True)])
                )
    return result


def format_result(result: StoreBenchResult) -> str:
    """A plain-text table of the figures."""

    def f(v: float | None, fmt: str = "{:.2f}") -> str:
        return "-" if v is None else fmt.format(v)

    lines = [
        f"{'backend':8} {'items':>7} {'multi':>6} {'upsert/s':>9} {'build s':>8} {'kNN p50':>8} {'kNN p95':>8} "
        f"{'exact p50':>9} {'MaxSim p50':>10} {'MaxSim p95':>10} {'recall@10':>9} {'batch q/s':>9}",
    ]
    for b in result.backends:
        lines.append(
            f"{b.backend:8} {b.items:>7} {b.multi_items:>6} {b.upsert_items_per_s:>9.0f} "
            f"{f(b.index_build_s, '{:.1f}'):>8} "
            f"{b.knn_p50_ms:>8.2f} {b.knn_p95_ms:>8.2f} {f(b.exact_knn_p50_ms):>9} {b.maxsim_p50_ms:>10.2f} "
            f"{b.maxsim_p95_ms:>10.2f} {f(b.recall_at_10, '{:.3f}'):>9} {f(b.batch_knn_queries_per_s, '{:.0f}'):>9}"
        )
    lines.append(
        "latencies in ms, one query at a time (kNN: top-10 by the pooled vector, HNSW on Edge; "
        "MaxSim: 2-row query vs the multivector subset, exact scan)"
    )
    for b in result.backends:
        if b.disk_bytes_per_item is not None:
            parts = ", ".join(f"{n} {v / b.items:.0f}" for n, v in (b.disk_vector_bytes or {}).items())
            lines.append(f"{b.backend} folder, closed: {b.disk_bytes_per_item:.0f} bytes per item on disk ({parts})")
    if result.top10_agreement is not None:
        lines.append(f"local mode top-10 identical to Edge exact search on {result.top10_agreement:.1%} of queries")
    return "\n".join(lines)
