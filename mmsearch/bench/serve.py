"""Serving benchmark: `mmsearch serve` under load against the in-process `Searcher`, in the same run.

On the query benchmark's store (`mmsearch.bench.query`: 100,000 synthetic items by default,
built once into the cache), for three kinds of request:

- `text`: a text for a warm user (CLIP text tower + MiniLM; `clip.image`, `clip.text`,
  `minilm.text`, `cf`), as `POST /search` with JSON;
- `image`: a JPEG for a warm user (CLIP image tower; `clip.image`, `clip.text`, `cf`), as
  `POST /search` with the photo as a multipart upload;
- `recommend`: a warm user alone (CF and the content profile), as `POST /recommend`;

each at 1, 4 and 16 concurrent clients (threads, one keep-alive connection each), measured twice:
first in process (the same `Searcher` calls from as many threads, the baseline), then over HTTP
against a `mmsearch serve` process on 127.0.0.1 over the same store. Per cell: requests/s, p50,
p95 and p99 latency, and errors (any non-200 answer). The HTTP/in-process ratios are what the
service costs; both sides share the machine, so ratios, not bare times, are the figures.

Then writes under load: while 4 clients search, another client upserts `upserts` new items (a
title and a photo each) in batches through `POST /items`; the item count before and after must
differ by exactly that many, every item must be found by id, and the searches must not fail.
The items are deleted again at the end, so the cached store is left as it was.

Run: `mmsearch bench serve` (`--items 20000 --requests 30` for a shorter run); from Python,
`format_result(run(ServeBenchConfig()))`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mmsearch.bench.query import BenchStore, QueryBenchConfig, bench_queries, open_bench_store
from mmsearch.bench.timing import ms_percentile
from mmsearch.cf import CFModel, save_model
from mmsearch.cf.collection import cf_folder
from mmsearch.errors import DependencyError, MmsearchError
from mmsearch.query.engine import Searcher, SearchSettings
from mmsearch.storage import Store, open_store

_log = logging.getLogger(__name__)
KINDS = ("text", "image", "recommend")
_READY_TIMEOUT_S = 600.0  # loading ViT-B-32 and MiniLM on a busy 2-core machine takes a while
_UPSERT_BATCH = 10


class ServeBenchConfig(BaseModel):
    """What to measure.

    Attributes:
        query: the store, models and query settings (`QueryBenchConfig`: items, cache, threads...).
        requests: timed requests per cell (kind x clients), in process and over HTTP alike.
        warmup: untimed requests per kind first, on each side.
        clients: the concurrent clients of each cell.
        upserts: items written through `POST /items` during the write check (0 skips it).
        rounds: in-process then HTTP, this many times (the server restarted each time); a cell's
            figures pool its requests over the rounds, so a machine whose load drifts weighs on
            both sides alike.
        concurrency: the server's `--concurrency` (searches at once); None: its default.
        port: the server's port on 127.0.0.1; 0 picks a free one.
    """

    model_config = ConfigDict(extra="forbid")

    query: QueryBenchConfig = Field(default_factory=lambda: QueryBenchConfig(queries=50, warmup=5))
    requests: int = Field(48, ge=1)
    warmup: int = Field(4, ge=0)
    clients: tuple[int, ...] = Field((1, 4, 16), min_length=1)
    upserts: int = Field(40, ge=0)
    rounds: int = Field(1, ge=1, le=10)
    concurrency: int | None = Field(None, ge=1, le=1024)
    port: int = Field(0, ge=0, le=65_535)


@dataclass
class LoadRow:
    """One cell: a kind of request at a number of clients, in process or over HTTP."""

    kind: str
    mode: str
    clients: int
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass
class WriteCheck:
    """Upserts under search load: nothing lost, nothing failed.

    Attributes:
        upserted: items sent to `POST /items`.
        indexed: items the service reported written.
        before, after: the collection's item count before and after.
        found: upserted items found by id afterwards.
        lost: `before + upserted - after` (0 when nothing is lost).
        write_errors: records the service refused, or failed requests.
        searches, search_errors: the searches run meanwhile, and those not answered 200.
        search_p50_ms: their median latency.
        removed: items deleted again at the end.
    """

    upserted: int
    indexed: int
    before: int
    after: int
    found: int
    lost: int
    write_errors: int
    searches: int
    search_errors: int
    search_p50_ms: float
    removed: int


@dataclass
class ServeBenchResult:
    """What `run` measured: the cells (in-process rows first), the write check, and the setup times."""

    config: dict[str, Any]
    build_s: float | None
    server_start_s: float
    rows: list[LoadRow]
    writes: WriteCheck | None
    machine: dict[str, Any] = field(default_factory=dict)  # cores, and the load average at each phase

    def pair(self, kind: str, clients: int) -> tuple[LoadRow, LoadRow]:
        """The in-process and HTTP rows of one cell."""
        found = {(r.mode, r.kind, r.clients): r for r in self.rows}
        return found[("in-process", kind, clients)], found[("http", kind, clients)]

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "build_s": self.build_s,
            "server_start_s": self.server_start_s,
            "machine": self.machine,
            "rows": [asdict(r) for r in self.rows],
            "writes": asdict(self.writes) if self.writes is not None else None,
        }


# ------------------------------------------------------------------ the load


def _load_avg() -> float:
    """The machine's 1-minute load average: how busy the shared cores were."""
    return round(os.getloadavg()[0], 2)


@dataclass
class _Tally:
    """The requests of one cell: their latencies, errors and wall time, pooled over rounds."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    def add(self, other: _Tally) -> None:
        self.latencies += other.latencies
        self.errors += other.errors
        self.seconds += other.seconds

    def row(self, kind: str, mode: str, clients: int) -> LoadRow:
        n = len(self.latencies)
        return LoadRow(
            kind=kind,
            mode=mode,
            clients=clients,
            requests=n,
            errors=self.errors,
            seconds=round(self.seconds, 3),
            rps=round(n / self.seconds, 2) if self.seconds else 0.0,
            p50_ms=ms_percentile(self.latencies, 50),
            p95_ms=ms_percentile(self.latencies, 95),
            p99_ms=ms_percentile(self.latencies, 99),
        )


def _load(clients: int, requests: int, call: Callable[[int, Any], bool], session: Callable[[], Any]) -> _Tally:
    """`requests` calls of `call(i, session)` from `clients` threads; `call` returns True when answered."""
    tally = _Tally()
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        own = session()
        try:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                start = time.perf_counter()
                ok = call(i, own)
                elapsed = time.perf_counter() - start
                with lock:
                    tally.latencies.append(elapsed)
                    tally.errors += 0 if ok else 1
        finally:
            if hasattr(own, "close"):
                own.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tally.seconds = time.perf_counter() - start
    return tally


@dataclass(frozen=True)
class _Inputs:
    """What each request of a kind sends: the i-th text, photo (bytes) and user, cycling."""

    texts: list[str]
    photos: list[bytes]
    photo_names: list[str]
    users: list[str]
    weights: dict[str, dict[str, float]]

    def at(self, i: int) -> tuple[str, bytes, str, str]:
        n = i % len(self.texts)
        return self.texts[n], self.photos[n], self.photo_names[n], self.users[n]


def _inputs(cfg: QueryBenchConfig, bench: BenchStore) -> _Inputs:
    q = bench_queries(cfg)
    c, text = bench.towers.clip, bench.towers.text
    weights = {
        "text": {f"{c}.image": 0.4, f"{c}.text": 0.2, f"{text}.text": 0.2, "cf": 0.2},
        "image": {f"{c}.image": 0.5, f"{c}.text": 0.2, "cf": 0.3},
    }
    photos = [Path(p).read_bytes() for p in q.images]
    names = [Path(p).relative_to(cfg.cache).as_posix() for p in q.images]
    return _Inputs(q.texts, photos, names, q.users, weights)


def _in_process(searcher: Searcher, inputs: _Inputs, limit: int) -> dict[str, Callable[[int, Any], bool]]:
    def text(i: int, _: Any) -> bool:
        t, _photo, _name, user = inputs.at(i)
        return bool(searcher.search(text=t, user=user, weights=inputs.weights["text"], limit=limit).results)

    def image(i: int, _: Any) -> bool:
        _t, photo, _name, user = inputs.at(i)
        return bool(searcher.search(image=photo, user=user, weights=inputs.weights["image"], limit=limit).results)

    def recommend(i: int, _: Any) -> bool:
        return bool(searcher.recommend(inputs.at(i)[3], limit=limit).results)

    return {"text": text, "image": image, "recommend": recommend}


def _over_http(url: str, inputs: _Inputs, limit: int) -> dict[str, Callable[[int, Any], bool]]:
    def text(i: int, client: Any) -> bool:
        t, _photo, _name, user = inputs.at(i)
        body = {"text": t, "user": user, "weights": inputs.weights["text"], "limit": limit}
        return bool(client.post(f"{url}/search", json=body).status_code == 200)

    def image(i: int, client: Any) -> bool:
        _t, photo, _name, user = inputs.at(i)
        query = json.dumps({"user": user, "weights": inputs.weights["image"], "limit": limit})
        files = {"image": ("q.jpg", photo, "image/jpeg")}
        return bool(client.post(f"{url}/search", files=files, data={"query": query}).status_code == 200)

    def recommend(i: int, client: Any) -> bool:
        return bool(client.post(f"{url}/recommend", json={"user": inputs.at(i)[3], "limit": limit}).status_code == 200)

    return {"text": text, "image": image, "recommend": recommend}


Tallies = dict[tuple[str, str, int], _Tally]


def _cells(
    mode: str,
    calls: dict[str, Callable[[int, Any], bool]],
    cfg: ServeBenchConfig,
    session: Callable[[], Any],
    tallies: Tallies,
    log: Callable[[str], None],
) -> None:
    """Every kind at every client count, on one side; each cell's requests added to `tallies`."""
    for kind in KINDS:
        if cfg.warmup:
            _load(1, cfg.warmup, calls[kind], session)
        for clients in cfg.clients:
            tally = _load(clients, cfg.requests, calls[kind], session)
            row = tally.row(kind, mode, clients)
            log(
                f"{mode:<10} {kind:<9} {clients:>2} clients: {row.rps:7.1f} req/s, p50 {row.p50_ms:6.1f} ms, "
                f"p99 {row.p99_ms:6.1f} ms, {row.errors} errors"
            )
            tallies.setdefault((mode, kind, clients), _Tally()).add(tally)


# ------------------------------------------------------------------ the server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_config(bench: BenchStore, folder: Path) -> Path:
    """The indexing config `mmsearch serve` runs on: the bench store and the two model folders."""
    s = bench.store.settings
    data = s.data_path or Path(".")  # an Edge store always has its folder
    where, clip, text_model = (json.dumps(str(Path(p).resolve())) for p in (data, bench.clip_dir, bench.text_dir))
    text = (
        f'[store]\nbackend = "edge"\npath = {where}\ncollection = "{s.collection}"\ncf_dim = {s.cf_dim}\n\n'
        f'[[encoders]]\nmodel = {clip}\ntext_fields = ["title"]\n\n'
        f'[[encoders]]\nmodel = {text_model}\ntext_fields = ["title"]\n'
    )
    path = folder / "serve-bench.toml"
    path.write_text(text, encoding="utf-8")
    return path


class _Server:
    """A `mmsearch serve` process on 127.0.0.1, its output in a log file."""

    def __init__(self, config: Path, cfg: ServeBenchConfig) -> None:
        self.port = cfg.port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        q = cfg.query
        command = [
            sys.executable,
            "-c",
            "from mmsearch.cli import main; main()",
            "serve",
            "-c",
            str(config),
            "--port",
            str(self.port),
            "--image-root",
            str(q.cache),
            "--device",
            "cpu",
            "--threads",
            str(q.threads or 1),
            "--candidates",
            str(q.candidates),
            "--log-level",
            "warning",
            *(["--concurrency", str(cfg.concurrency)] if cfg.concurrency else []),
        ]
        root = str(Path(__file__).resolve().parents[2])  # this mmsearch, also when run from a checkout
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        env.pop("MMSEARCH_API_KEYS", None)  # loopback, no keys: the benchmark measures the search path
        self.log_path = q.cache / "serve-bench.log"
        self._log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, client: Any) -> float:
        start = time.perf_counter()
        while time.perf_counter() - start < _READY_TIMEOUT_S:
            if self.process.poll() is not None:
                raise MmsearchError(f"mmsearch serve exited with {self.process.returncode}: {self._tail()}")
            try:
                if client.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return time.perf_counter() - start
            except Exception:  # noqa: BLE001 - not listening yet: any connection error means wait
                pass
            time.sleep(0.25)
        raise MmsearchError(f"mmsearch serve was not ready after {_READY_TIMEOUT_S:.0f} s: {self._tail()}")

    def _tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8")[-2000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


# ------------------------------------------------------------------ writes under load


def _items_count(client: Any, url: str) -> int:
    return int(client.get(f"{url}/readyz").json()["items"])


def _write_check(url: str, inputs: _Inputs, cfg: ServeBenchConfig, httpx: Any) -> WriteCheck:
    """Upsert `cfg.upserts` new items while 4 clients search; count, find, then delete them."""
    ids = [f"bench-serve-{i}" for i in range(cfg.upserts)]
    records = [{"id": item, "title": inputs.at(i)[0], "images": [inputs.at(i)[2]]} for i, item in enumerate(ids)]
    with httpx.Client(timeout=120) as client:
        for item in ids:  # a previous run that stopped midway may have left some
            client.delete(f"{url}/items/{item}")
        before = _items_count(client, url)
        indexed, write_errors = 0, 0
        done, searching = threading.Event(), threading.Event()
        searches = _over_http(url, inputs, cfg.query.limit)["text"]
        stats: list[LoadRow] = []
        reader = threading.Thread(
            target=lambda: stats.append(_searches_until(done, searches, lambda: httpx.Client(timeout=120), searching))
        )
        reader.start()
        try:
            searching.wait(_READY_TIMEOUT_S)  # the writes start once the searches have
            for lo in range(0, len(records), _UPSERT_BATCH):
                response = client.post(f"{url}/items", json={"items": records[lo : lo + _UPSERT_BATCH]})
                if response.status_code != 200:
                    write_errors += len(records[lo : lo + _UPSERT_BATCH])
                    continue
                body = response.json()
                indexed += body["indexed"]
                write_errors += len(body["errors"])
        finally:
            done.set()
            reader.join()
        after = _items_count(client, url)
        found = sum(client.get(f"{url}/items/{item}").status_code == 200 for item in ids)
        removed = sum(client.delete(f"{url}/items/{item}").status_code == 200 for item in ids)
    search = stats[0] if stats else LoadRow("text", "http", 4, 0, 0, 0.0, 0.0, float("nan"), 0.0, 0.0)
    return WriteCheck(
        upserted=len(ids),
        indexed=indexed,
        before=before,
        after=after,
        found=found,
        lost=before + len(ids) - after,
        write_errors=write_errors,
        searches=search.requests,
        search_errors=search.errors,
        search_p50_ms=search.p50_ms,
        removed=removed,
    )


def _searches_until(
    done: threading.Event,
    call: Callable[[int, Any], bool],
    session: Callable[[], Any],
    searching: threading.Event | None = None,
) -> LoadRow:
    """4 clients searching until `done` is set (`searching` set once one search was answered); their figures."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(10**9))

    def worker() -> None:
        nonlocal errors
        with session() as own:
            while not done.is_set():
                with lock:
                    i = next(counter)
                start = time.perf_counter()
                ok = call(i, own)
                with lock:
                    latencies.append(time.perf_counter() - start)
                    errors += 0 if ok else 1
                if searching is not None:
                    searching.set()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    n = len(latencies)
    return LoadRow(
        "text", "http", 4, n, errors, seconds, n / seconds if seconds else 0.0, ms_percentile(latencies, 50), 0.0, 0.0
    )


# ------------------------------------------------------------------ the run


def _baseline(
    cfg: ServeBenchConfig,
    bench: BenchStore,
    store: Store,
    cf_model: CFModel,
    tallies: Tallies,
    log: Callable[[str], None],
) -> None:
    q = cfg.query
    searcher = Searcher(store, [bench.clip, bench.text_model], cf_model, SearchSettings(candidates=q.candidates))
    _cells("in-process", _in_process(searcher, _inputs(q, bench), q.limit), cfg, lambda: None, tallies, log)


@dataclass
class _Run:
    """What the rounds gather: the cells, the load average at each phase, server start times, writes."""

    tallies: Tallies = field(default_factory=dict)
    load: dict[str, float] = field(default_factory=dict)
    starts: list[float] = field(default_factory=list)
    writes: WriteCheck | None = None


def _round(
    n: int, cfg: ServeBenchConfig, bench: BenchStore, cf_model: CFModel, run: _Run, log: Callable[[str], None]
) -> None:
    """One round: the in-process cells, then the server's; the write check in the last round."""
    import httpx

    q = cfg.query
    store = bench.store if n == 0 else open_store(bench.store.settings, encoders=bench.towers.specs)
    try:
        run.load[f"in-process {n + 1}"] = _load_avg()
        _baseline(cfg, bench, store, cf_model, run.tallies, log)
        config_path = _server_config(bench, q.cache)
    finally:
        store.close()  # Edge is one process: the server opens the store next
    server = _Server(config_path, cfg)
    try:
        with httpx.Client() as probe:
            run.starts.append(server.wait_ready(probe))
        log(f"mmsearch serve ready on {server.url} in {run.starts[-1]:.1f} s")
        run.load[f"HTTP {n + 1}"] = _load_avg()
        inputs = _inputs(q, bench)
        _cells(
            "http", _over_http(server.url, inputs, q.limit), cfg, lambda: httpx.Client(timeout=120), run.tallies, log
        )
        if n == cfg.rounds - 1 and cfg.upserts:
            run.writes = _write_check(server.url, inputs, cfg, httpx)
    finally:
        server.stop()


def run(config: ServeBenchConfig | None = None, log: Callable[[str], None] = _log.info) -> ServeBenchResult:
    """Time the in-process baseline, then the same requests over HTTP (`rounds` times), then writes under load.

    Args:
        config: what to measure (default: the 100,000-item store, 48 requests per cell, 1/4/16 clients).
        log: called with progress lines (default: this module's logger, at INFO).

    Returns:
        The rows of both sides, the write check, the store's build time and the server's start time.

    Raises:
        DependencyError: httpx is not installed.
        MmsearchError: the server did not start (its log is in the message), or `run`'s errors of
            `mmsearch.bench.query`.
    """
    try:
        import httpx  # noqa: F401 - the clients' library, checked before minutes of setup
    except ImportError as e:
        raise DependencyError("the serving benchmark's clients need httpx: pip install httpx") from e
    cfg = config or ServeBenchConfig()
    q = cfg.query
    bench = open_bench_store(q, log)
    try:
        cf_model = bench.catalogue.cf_model(q.users)
        save_model(cf_model, cf_folder(bench.store) or q.cache / "cf")  # where the server finds it
    except BaseException:
        bench.store.close()
        raise
    gathered = _Run()
    for n in range(cfg.rounds):
        _round(n, cfg, bench, cf_model, gathered, log)
    rows = [t.row(kind, mode, clients) for (mode, kind, clients), t in gathered.tallies.items()]
    machine = {"cpus": os.cpu_count(), "load_avg_1m": {**gathered.load, "end": _load_avg()}}
    start_s = round(float(np.median(gathered.starts)), 2)
    config_json = json.loads(cfg.model_dump_json())
    return ServeBenchResult(config_json, bench.build_s, start_s, rows, gathered.writes, machine)


def _loads(machine: dict[str, Any]) -> str:
    loads = machine.get("load_avg_1m") or {}
    return ", ".join(f"{phase} {value:g}" for phase, value in loads.items())


def format_result(result: ServeBenchResult) -> str:
    """A table pairing each in-process cell with its HTTP cell, then the write check."""
    c = result.config
    q = c["query"]
    lines = [
        (
            f"items {q['items']:,}, {c['requests']} requests per cell, candidates {q['candidates']}/signal, "
            f"{c['rounds']} round(s), Qdrant Edge, CPU, {result.machine.get('cpus')} cores "
            f"(1-min load average: {_loads(result.machine)}), "
            f"{q['threads']} onnxruntime thread(s) per tower, towers {'int8' if q['quantize'] == 'int8' else 'fp32'}"
        ),
        (
            f"{'query':<9} {'clients':>7} | {'in-process req/s':>16} {'p50':>6} {'p95':>6} {'p99':>6} | "
            f"{'HTTP req/s':>10} {'p50':>6} {'p95':>6} {'p99':>6} | {'req/s x':>7} {'p50 x':>6} {'errors':>6}"
        ),
    ]
    for kind in KINDS:
        for clients in c["clients"]:
            a, b = result.pair(kind, clients)
            lines.append(
                f"{kind:<9} {clients:>7} | {a.rps:>16.1f} {a.p50_ms:>6.1f} {a.p95_ms:>6.1f} {a.p99_ms:>6.1f} | "
                f"{b.rps:>10.1f} {b.p50_ms:>6.1f} {b.p95_ms:>6.1f} {b.p99_ms:>6.1f} | "
                f"{b.rps / a.rps:>6.2f}x {b.p50_ms / a.p50_ms:>5.2f}x {a.errors + b.errors:>6}"
            )
    lines.append("latencies in ms; req/s x and p50 x: HTTP over in-process, the cost of the service")
    w = result.writes
    if w is not None:
        lines.append(
            f"writes under load: {w.upserted} items upserted ({w.indexed} indexed, {w.write_errors} refused) "
            f"while {w.searches} searches ran ({w.search_errors} errors, p50 {w.search_p50_ms:.1f} ms); "
            f"items {w.before:,} -> {w.after:,}, lost {w.lost}, found by id {w.found}/{w.upserted}, "
            f"deleted again {w.removed}"
        )
    return "\n".join(lines)


__all__ = ["KINDS", "LoadRow", "ServeBenchConfig", "ServeBenchResult", "WriteCheck", "format_result", "run"]
