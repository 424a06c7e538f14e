"""Scale benchmark: the default schema at a million items in one Edge folder, on one machine.

The catalogue has the shape a real one has: CLIP image and text vectors, a MiniLM text vector and
a 64-d `cf` vector per item; 10% of the items carry 2-4 photos (a MaxSim multivector beside the
pooled one), 10% none, 30% no CF factors. Vectors are not uniform noise, on which HNSW recall
means nothing: each item is a point of a 48-d latent space (2,000 topics, items spread around
them) mapped into every vector space by a fixed random projection plus a little isotropic noise,
so the spaces agree with one another and have the low intrinsic dimension real embeddings have.

The store uses the settings this benchmark exists to check: scalar int8 quantization of the pooled
vectors (kept in RAM; searches rescore with the originals) and the originals memory-mapped on disk
(`quantization="scalar"`, `on_disk=True`; the same two settings on a Qdrant server give the same
layout).

Measured:
- build: upsert time, HNSW build (`optimize`) time, and the process's peak RSS over the build;
- disk: the closed folder's bytes, per item and per named vector;
- kNN on `clip.image` (HNSW, int8, rescored): p50/p95, and recall@10 against exact search on the
  same store (originals, no quantization) for noisy copies of random items;
- hybrid: `Searcher.search(item=...)`, four signals fused inside Qdrant, p50/p95; the ratio is
  against the kNN measured in the same run.

The build is long (on two cores, about an hour per million items), so it resumes: the catalogue
is a pure function of the seed and the batch number, and a rerun continues from the items
already stored. Later runs reuse the built store.

Run: `mmsearch bench scale --items 1000000` (add `--json` for the figures as JSON).
"""

from __future__ import annotations

import functools
import json
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from indexers.protocol import EncoderSpec
from mmsearch.bench.memory import AnonPeak, rss_peak
from mmsearch.bench.query import default_cache as query_cache
from mmsearch.bench.store import disk_usage
from mmsearch.bench.timing import ms_percentile, time_calls
from mmsearch.bench.vectors import unit
from mmsearch.cf import ALSConfig, CFModel
from mmsearch.query.engine import Searcher, SearchSettings
from mmsearch.storage import HnswSettings, Item, Store, StoreSettings, open_store

_log = logging.getLogger(__name__)

CF_DIM = 64
_LATENT = 48
_TOPICS = 2_000
_IMAGE = "clip.image"
_DIMS = {"clip.image": 512, "clip.text": 512, "minilm.text": 384, "cf": CF_DIM}


def default_cache() -> Path:
    """`$MMSEARCH_CACHE/bench-scale`, else `~/.cache/mmsearch/bench-scale`."""
    return query_cache().parent / "bench-scale"


def scale_encoders() -> list[EncoderSpec]:
    """Stand-in specs of the default schema's encoders (no model is loaded)."""
    return [
        EncoderSpec("clip", "clip", "image", 512, "cosine", "scale-clip-image"),
        EncoderSpec("clip", "clip", "text", 512, "cosine", "scale-clip-text"),
        EncoderSpec("minilm", "bert", "text", 384, "cosine", "scale-minilm-text"),
    ]


class ScaleBenchConfig(BaseModel):
    """What to measure.

    Attributes:
        items: catalogue size.
        queries: timed kNN and hybrid queries (and recall queries).
        batch: items per upsert call (and per deterministic batch of the catalogue).
        quantization: `scalar` (int8, the benchmark's point), `binary` or `none`.
        in_ram: originals in RAM instead of memory-mapped on disk.
        hnsw: graph parameters.
        cache: folder for the built stores, reused by later runs.
        seed: random seed.
    """

    model_config = ConfigDict(extra="forbid")

    items: int = Field(1_000_000, ge=1_000)
    queries: int = Field(200, ge=1)
    batch: int = Field(5_000, ge=100)
    quantization: Literal["none", "scalar", "binary"] = "scalar"
    in_ram: bool = False
    hnsw: HnswSettings = HnswSettings()
    cache: Path = Field(default_factory=default_cache)
    seed: int = 0


@dataclass
class ScaleFigures:
    """What `run` measured; latencies in milliseconds, sizes in bytes."""

    items: int
    multi_items: int
    upsert_s: float
    optimize_s: float
    build_peak_rss: int
    build_peak_anon: int
    query_peak_rss: int
    disk_bytes: int
    disk_vector_bytes: dict[str, int]
    knn_p50_ms: float
    knn_p95_ms: float
    exact_p50_ms: float
    recall_at_10: float
    ef_sweep: dict[str, list[float]]
    hybrid_signals: list[str]
    hybrid_p50_ms: float
    hybrid_p95_ms: float
    resumed: bool

    @property
    def hybrid_ratio(self) -> float:
        """Hybrid p50 over the kNN p50 of the same run."""
        return self.hybrid_p50_ms / self.knn_p50_ms


class Catalogue:
    """The synthetic catalogue: batch `b` is a pure function of (seed, b)."""

    def __init__(self, cfg: ScaleBenchConfig) -> None:
        rng = np.random.default_rng([cfg.seed, 0])
        self.cfg = cfg
        self.topics = rng.standard_normal((_TOPICS, _LATENT)).astype(np.float32)
        # A shared projection plus a private one per space: the spaces agree, not perfectly.
        shared = {n: rng.standard_normal((_LATENT, d)).astype(np.float32) for n, d in _DIMS.items()}
        self.projections = {
            n: shared[n] + 0.5 * rng.standard_normal((_LATENT, d)).astype(np.float32) for n, d in _DIMS.items()
        }

    def _space(self, name: str, latent: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
        x = unit(latent @ self.projections[name])
        return unit(x + rng.standard_normal(x.shape).astype(np.float32) * (noise / np.sqrt(x.shape[-1])))

    def latent(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """`n` items' topics and latent points."""
        topics = rng.integers(0, _TOPICS, n)
        return topics, self.topics[topics] + 0.6 * rng.standard_normal((n, _LATENT)).astype(np.float32)

    def batch(self, b: int) -> list[Item]:
        """Items `b * batch` up to the next batch (fewer at the end)."""
        cfg = self.cfg
        start, stop = b * cfg.batch, min(cfg.items, (b + 1) * cfg.batch)
        rng = np.random.default_rng([cfg.seed, 1, b])
        n = stop - start
        topics, z = self.latent(rng, n)
        photos = rng.random(n)  # < 0.1: none; >= 0.9: several
        text = self._space("clip.text", z, rng, 0.3)
        minilm = self._space("minilm.text", z, rng, 0.3)
        image = self._space("clip.image", z, rng, 0.3)
        cf = z @ self.projections["cf"] / np.sqrt(_LATENT) + 0.3 * rng.standard_normal((n, CF_DIM)).astype(np.float32)
        has_cf = rng.random(n) >= 0.3
        items = []
        for k in range(n):
            v: dict[str, np.ndarray] = {"clip.text": text[k], "minilm.text": minilm[k]}
            if photos[k] >= 0.9:
                rows = z[k] + 0.3 * rng.standard_normal((int(rng.integers(2, 5)), _LATENT)).astype(np.float32)
                v["clip.image"] = self._space("clip.image", rows, rng, 0.3)
            elif photos[k] >= 0.1:
                v["clip.image"] = image[k]
            if has_cf[k]:
                v["cf"] = cf[k]
            payload = {"topic": int(topics[k]), "price": float((start + k) % 500), "in_stock": bool(k % 3)}
            items.append(Item(f"item{start + k}", v, payload))
        return items

    def queries(self, n: int) -> tuple[np.ndarray, list[str]]:
        """`n` image-space query vectors near random items' latent points, and `n` item ids."""
        rng = np.random.default_rng([self.cfg.seed, 2])
        _, z = self.latent(rng, n)
        ids = [f"item{int(i)}" for i in rng.integers(0, self.cfg.items, n)]
        return self._space(_IMAGE, z + 0.2 * rng.standard_normal(z.shape).astype(np.float32), rng, 0.3), ids

    @property
    def multi_items(self) -> int:
        """How many items carry several photos (counted over the generated batches' draws)."""
        cfg, total = self.cfg, 0
        for b in range(-(-cfg.items // cfg.batch)):
            rng = np.random.default_rng([cfg.seed, 1, b])
            n = min(cfg.items, (b + 1) * cfg.batch) - b * cfg.batch
            self.latent(rng, n)
            total += int((rng.random(n) >= 0.9).sum())
        return total


def store_settings(cfg: ScaleBenchConfig) -> StoreSettings:
    """The Edge settings of this configuration's cached store."""
    key = f"scale-{cfg.items}-{cfg.batch}-{cfg.seed}-{cfg.quantization}-{'ram' if cfg.in_ram else 'disk'}"
    key += f"-m{cfg.hnsw.m}-ef{cfg.hnsw.ef_construct}"
    return StoreSettings(
        backend="edge",
        path=cfg.cache,
        collection=key,
        quantization=cfg.quantization,
        on_disk=not cfg.in_ram,
        hnsw=cfg.hnsw,
        cf_dim=CF_DIM,
        optimize_after=None,
        payload_indexes={"topic": "integer", "in_stock": "bool"},
    )


def _progress(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def build(cfg: ScaleBenchConfig, log: Callable[[str], None]) -> tuple[StoreSettings, dict[str, Any]]:
    """Build (or finish building) the cached store; returns its settings and the build record."""
    settings = store_settings(cfg)
    cfg.cache.mkdir(parents=True, exist_ok=True)
    record_path = cfg.cache / f"{settings.collection}.json"
    record = _progress(record_path)
    if record.get("optimized"):
        return settings, record
    catalogue = Catalogue(cfg)
    with AnonPeak() as anon, open_store(settings, encoders=scale_encoders()) as store:
        done = store.count() // cfg.batch  # batches are idempotent: redo the last partial one
        record["resumed"] = record.get("resumed", False) or done > 0
        batches = -(-cfg.items // cfg.batch)
        before, t0 = record.get("upsert_s", 0.0), time.perf_counter()
        for b in range(done, batches):
            store.upsert(catalogue.batch(b), optimize=False)
            if (b + 1) % max(1, batches // 20) == 0 or b + 1 == batches:
                record["upsert_s"] = before + time.perf_counter() - t0
                record["build_peak_rss"] = max(record.get("build_peak_rss", 0), rss_peak())
                record_path.write_text(json.dumps(record))
                log(f"upserted {min(cfg.items, (b + 1) * cfg.batch):,} / {cfg.items:,} items")
        record["upsert_s"] = before + time.perf_counter() - t0
        record_path.write_text(json.dumps(record))
        log("building the HNSW graphs (optimize)")
        t1 = time.perf_counter()
        store.optimize()
        record["optimize_s"] = time.perf_counter() - t1
    record["build_peak_rss"] = max(record.get("build_peak_rss", 0), rss_peak())
    record["build_peak_anon"] = max(record.get("build_peak_anon", 0), anon.peak)
    record["optimized"] = True
    record_path.write_text(json.dumps(record))
    log(f"built: upsert {record['upsert_s']:.0f} s, optimize {record['optimize_s']:.0f} s")
    return settings, record


_EF_SWEEP = (10, 16, 32, 64)


def _knn_at(store: Store, vectors: np.ndarray, ef: int | None, i: int) -> list[Any]:
    return store.query(_IMAGE, vectors[i], limit=10, hnsw_ef=ef)


def _recall(found: Sequence[Sequence[Any]], exact: Sequence[Sequence[Any]]) -> float:
    return statistics.fmean(
        len({h.id for h in a} & {h.id for h in e}) / max(1, len(e)) for a, e in zip(found, exact, strict=True)
    )


def _cf_model() -> CFModel:
    """A CF model for the `cf` signal: an item query reads its factors from the store, not the model."""
    rng = np.random.default_rng(0)
    return CFModel(
        config=ALSConfig(factors=CF_DIM),
        user_ids=("user0",),
        item_ids=("item0",),
        user_factors=rng.standard_normal((1, CF_DIM)).astype(np.float32),
        item_factors=rng.standard_normal((1, CF_DIM)).astype(np.float32),
        seen_indptr=np.array([0, 1]),
        seen_indices=np.array([0]),
    )


def measure(store: Store, cfg: ScaleBenchConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """kNN, recall@10 and hybrid latencies on the open store.

    Every timing runs on queries of its own, after a warm-up on others: a fresh process maps the
    store's files page by page, and a query replaying one just run would find its pages cached.
    Recall is counted on one common set, against exact search on the originals.
    """
    n, rounds = cfg.queries, 3 + len(_EF_SWEEP)  # warm-up, recall, default ef, then one per swept ef
    vectors, item_ids = Catalogue(cfg).queries(rounds * n)
    sets = [range(k * n, (k + 1) * n) for k in range(rounds)]
    warm, common, timed = sets[0], sets[1], sets[2]
    for i in warm:
        store.query(_IMAGE, vectors[i], limit=10)
    knn_t, _ = time_calls(functools.partial(_knn_at, store, vectors, None), timed)
    log(f"kNN p50 {ms_percentile(knn_t, 50):.2f} ms")
    exact_t, exact = time_calls(lambda i: store.query(_IMAGE, vectors[i], limit=10, exact=True), common)
    recall = _recall(time_calls(functools.partial(_knn_at, store, vectors, None), common)[1], exact)
    log(f"recall@10 {recall:.3f}")
    # The search-time ef trades recall for speed: the curve below the store's own setting.
    sweep: dict[str, list[float]] = {}
    for ef, own in zip(_EF_SWEEP, sets[3:], strict=True):
        ef_t, _ = time_calls(functools.partial(_knn_at, store, vectors, ef), own)
        hits = time_calls(functools.partial(_knn_at, store, vectors, ef), common)[1]
        sweep[str(ef)] = [_recall(hits, exact), ms_percentile(ef_t, 50)]
    searcher = Searcher(store, [], _cf_model(), SearchSettings())
    weights = {"clip.image": 0.4, "clip.text": 0.2, "minilm.text": 0.2, "cf": 0.2}
    full = [r.id for r in store.retrieve(item_ids[: 2 * n], with_vectors=True) if r.vectors.keys() >= weights.keys()]
    half = len(full) // 2
    for item in full[:half]:
        searcher.search(item=item, weights=weights, limit=10)
    hyb_t, responses = time_calls(
        lambda i: searcher.search(item=full[i], weights=weights, limit=10), range(half, len(full))
    )
    log(f"hybrid p50 {ms_percentile(hyb_t, 50):.2f} ms")
    return {
        "knn_p50_ms": ms_percentile(knn_t, 50),
        "knn_p95_ms": ms_percentile(knn_t, 95),
        "exact_p50_ms": ms_percentile(exact_t, 50),
        "recall_at_10": recall,
        "ef_sweep": sweep,
        "hybrid_signals": [s.name for s in responses[0].signals] if responses else [],
        "hybrid_p50_ms": ms_percentile(hyb_t, 50),
        "hybrid_p95_ms": ms_percentile(hyb_t, 95),
    }


def run(config: ScaleBenchConfig | None = None, log: Callable[[str], None] = _log.info) -> ScaleFigures:
    """Build (or reuse, or finish) the store, then measure it.

    Args:
        config: what to measure (default: 1,000,000 items, scalar quantization, originals on disk).
        log: called with progress lines.

    Returns:
        The figures.
    """
    cfg = config or ScaleBenchConfig()
    settings, record = build(cfg, log)
    with open_store(settings, encoders=scale_encoders()) as store:
        figures = measure(store, cfg, log)
    total, by_vector = disk_usage(Path(cfg.cache) / settings.collection)
    return ScaleFigures(
        items=cfg.items,
        multi_items=Catalogue(cfg).multi_items,
        upsert_s=record["upsert_s"],
        optimize_s=record["optimize_s"],
        build_peak_rss=record["build_peak_rss"],
        build_peak_anon=record.get("build_peak_anon", 0),
        query_peak_rss=rss_peak(),
        disk_bytes=total,
        disk_vector_bytes=by_vector,
        resumed=record.get("resumed", False),
        **figures,
    )


def to_json(figures: ScaleFigures) -> dict[str, Any]:
    """The figures as a JSON-able dict (with the hybrid / kNN ratio)."""
    return {**asdict(figures), "hybrid_ratio": figures.hybrid_ratio}


def format_result(f: ScaleFigures, cfg: ScaleBenchConfig) -> str:
    """A plain-text summary."""
    gib = 1024**3
    parts = ", ".join(f"{n} {v / f.items:.0f}" for n, v in f.disk_vector_bytes.items())
    return "\n".join(
        [
            f"items {f.items:,} ({f.multi_items:,} with several photos), Qdrant Edge, quantization "
            f"{cfg.quantization}, originals {'in RAM' if cfg.in_ram else 'on disk'}, HNSW m={cfg.hnsw.m}, "
            f"ef_construct={cfg.hnsw.ef_construct}, ef={cfg.hnsw.ef}",
            f"build: upsert {f.upsert_s:.0f} s ({f.items / f.upsert_s:,.0f} items/s), HNSW {f.optimize_s:.0f} s, "
            f"peak RSS {f.build_peak_rss / gib:.1f} GiB (mapped vector files included; "
            f"heap {f.build_peak_anon / gib:.1f} GiB)"
            f"{' (resumed build: the peaks of the last part)' if f.resumed else ''}",
            f"disk (closed): {f.disk_bytes / gib:.2f} GiB, {f.disk_bytes / f.items:,.0f} bytes per item ({parts})",
            f"kNN clip.image: p50 {f.knn_p50_ms:.2f} ms, p95 {f.knn_p95_ms:.2f} ms; exact p50 {f.exact_p50_ms:.1f} ms; "
            f"recall@10 {f.recall_at_10:.3f}; at a search ef of "
            + ", ".join(f"{ef}: {r:.3f} ({ms:.2f} ms)" for ef, (r, ms) in f.ef_sweep.items()),
            f"hybrid ({', '.join(f.hybrid_signals)}): p50 {f.hybrid_p50_ms:.2f} ms, p95 {f.hybrid_p95_ms:.2f} ms "
            f"({f.hybrid_ratio:.1f}x the kNN p50); query-time peak RSS {f.query_peak_rss / gib:.1f} GiB",
        ]
    )


__all__ = ["Catalogue", "ScaleBenchConfig", "ScaleFigures", "build", "default_cache", "format_result", "run"]
