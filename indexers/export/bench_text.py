"""Text towers against their fair baselines: the same varied texts, batch size and threads, one run.

For MiniLM the baseline is `SentenceTransformer.encode()` (which sorts texts by length itself);
for CLIP's text tower, open_clip's `encode_text` on its tokenizer's 77-token rows. Against each:
mmsearch's encoder on the fp32 graph and on the int8 graph (`load_model(...).embed_texts`: the
tokenizer, length grouping and onnxruntime, as a query or `mmsearch index` runs it), and
fastembed on the very same fp32 graph file when an interpreter with fastembed is given (its
texts as given, then pre-sorted by token length). Runtimes alternate in rounds: each round times
one pass over the texts and `short_runs` single short texts per runtime, and every ratio is the
median over rounds of the ratio within a round, so a machine that gets busier between rounds
shifts the figures, not the ratios. The embeddings are checked against the baseline's (cosine).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mmsearch.errors import ExportError

SHORT_TEXT = "a red ball for kids"
SHORT_RUNS = 50  # single short texts timed per runtime and round, after 10 untimed
BASELINE = "baseline"
RUNNER = Path(__file__).with_name("fastembed_runner.py")


@dataclass(frozen=True)
class TextRow:
    """One runtime of one text tower.

    Attributes:
        case: the tower (`minilm-l6 text`, `clip ViT-B-32 text`).
        runtime: what ran it; the baseline's row has `vs_baseline` 1.
        texts_per_s: median texts/s of one pass over the texts (a figure of this run only).
        vs_baseline: median over rounds of this runtime's speed over the baseline's.
        vs_fastembed: median over rounds of its speed over fastembed's on the texts (as given,
            pre-sorted); None without fastembed, and on fastembed's own rows.
        short_ms: median latency of one short text, ms.
        short_vs_baseline: the baseline's short-text latency over this one's (> 1: faster).
        cosine_min: the lowest cosine of its embeddings to the baseline's, over the texts.
    """

    case: str
    runtime: str
    texts_per_s: float
    vs_baseline: float
    vs_fastembed: tuple[float, float] | None
    short_ms: float | None
    short_vs_baseline: float | None
    cosine_min: float | None


@dataclass
class Runtime:
    """A runtime in the rounds: `embed` all texts in their given order, `one` for a short text.

    The rounds fill `seconds` (one pass each), `short` (median seconds of a short text each) and
    `vectors` (the first pass's embeddings). fastembed's rows have no callables: its subprocess
    times itself.
    """

    name: str
    embed: Callable[[list[str]], np.ndarray] | None = None
    one: Callable[[str], object] | None = None
    seconds: list[float] = field(default_factory=list)
    short: list[float] = field(default_factory=list)
    vectors: np.ndarray | None = None


@dataclass(frozen=True)
class FastembedSpec:
    """What `fastembed_runner.py` reads: the model folder it loads and how to time it."""

    key: str
    model_dir: str
    model_file: str
    output_name: str
    dim: int
    texts_file: str
    sorted_order: list[int]
    threads: int
    batch_size: int
    embeddings_file: str
    short_text: str = SHORT_TEXT
    short_runs: int = SHORT_RUNS
    short_warmup: int = 10


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return np.sum(a64 * b64, axis=1) / np.maximum(np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1), 1e-12)


def _short_latency(one: Callable[[str], object], runs: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        one(SHORT_TEXT)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        one(SHORT_TEXT)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _round(runtime: Runtime, texts: list[str], short_runs: int) -> None:
    if runtime.embed is None:
        raise ExportError(f"{runtime.name} has nothing to run")
    runtime.embed(texts[:64])  # warm-up: first runs allocate and pick kernels
    started = time.perf_counter()
    vectors = runtime.embed(texts)
    runtime.seconds.append(time.perf_counter() - started)
    if runtime.vectors is None:
        runtime.vectors = vectors
    if runtime.one is not None:
        runtime.short.append(_short_latency(runtime.one, short_runs))


def fastembed_works(python: str) -> bool:
    """Whether `python` can import fastembed."""
    try:
        done = subprocess.run([python, "-c", "import fastembed"], capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


class Fastembed:
    """fastembed in a subprocess of `python`, loading `graph` (linked into a folder of its layout).

    Args:
        python: an interpreter that can import fastembed.
        graph: the fp32 .onnx file mmsearch runs.
        tokenizer: the model folder's tokenizer.json.
        output: the graph's output name.
        pad: the pad token and id; max_length: the truncation length.
        workdir: where the folder, texts and embeddings go.
    """

    def __init__(
        self,
        python: str,
        graph: Path,
        tokenizer: Path,
        *,
        output: str,
        pad: tuple[str, int],
        max_length: int,
        workdir: Path,
    ) -> None:
        self.python = python
        self.folder = workdir / f"fastembed-{graph.parent.name}"
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, target in ((graph.name, graph), ("tokenizer.json", tokenizer)):
            link = self.folder / name
            link.unlink(missing_ok=True)
            link.symlink_to(target.resolve())
        config = {"model_max_length": max_length, "pad_token": pad[0]}
        (self.folder / "tokenizer_config.json").write_text(json.dumps(config))
        (self.folder / "config.json").write_text(json.dumps({"pad_token_id": pad[1]}))
        self.graph, self.output, self.workdir = graph, output, workdir

    def run(self, texts_file: Path, order: list[int], *, dim: int, threads: int, batch: int, short_runs: int) -> dict:
        """One round: the seconds of a pass as given and pre-sorted, short-text ms, the embeddings.

        Raises:
            ExportError: the subprocess failed (its stderr is quoted).
        """
        spec = FastembedSpec(
            key=self.graph.parent.name,
            model_dir=str(self.folder),
            model_file=self.graph.name,
            output_name=self.output,
            dim=dim,
            texts_file=str(texts_file),
            sorted_order=order,
            threads=threads,
            batch_size=batch,
            embeddings_file=str(self.workdir / f"fastembed-{self.graph.parent.name}.npy"),
            short_runs=short_runs,
        )
        spec_file = self.workdir / "fastembed-spec.json"
        spec_file.write_text(json.dumps(asdict(spec)))
        done = subprocess.run([self.python, str(RUNNER), str(spec_file)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ExportError(f"fastembed ({self.python}) failed: {done.stderr.strip()[-2000:]}")
        result = json.loads(done.stdout)
        result["vectors"] = np.load(spec.embeddings_file)
        return result


def bench_text_case(
    case: str,
    texts: list[str],
    baseline: Runtime,
    runtimes: Sequence[Runtime],
    fastembed: Callable[[], dict] | None,
    *,
    rounds: int,
    short_runs: int,
) -> list[TextRow]:
    """Alternate the baseline, mmsearch's runtimes and fastembed for `rounds`; one row per runtime."""
    given = Runtime("fastembed (as given)")
    presorted = Runtime("fastembed (pre-sorted)")
    for _ in range(rounds):
        for runtime in (baseline, *runtimes):
            _round(runtime, texts, short_runs)
        if fastembed is not None:
            result = fastembed()
            given.seconds.append(result["given_s"])
            presorted.seconds.append(result["sorted_s"])
            given.short.append(statistics.median(result["short_ms"]) / 1e3)
            if given.vectors is None:
                given.vectors = presorted.vectors = result["vectors"]
    fe = (given.seconds, presorted.seconds) if fastembed is not None else None
    rows = [_row(case, r, baseline, len(texts), fe) for r in (baseline, *runtimes)]
    if fastembed is not None:
        rows += [_row(case, r, baseline, len(texts), None) for r in (given, presorted)]
    return rows


def _ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """Median over rounds of b / a: the speed of the runtime timed `a` over the one timed `b`."""
    return statistics.median(y / x for x, y in zip(a, b, strict=True))


def _row(
    case: str, r: Runtime, base: Runtime, count: int, fastembed: tuple[list[float], list[float]] | None
) -> TextRow:
    cosine = None
    if r.vectors is not None and base.vectors is not None:
        cosine = float(_cosines(r.vectors, base.vectors).min())
    return TextRow(
        case=case,
        runtime=f"{r.name} ({BASELINE})" if r is base else r.name,
        texts_per_s=count / statistics.median(r.seconds),
        vs_baseline=_ratio(r.seconds, base.seconds),
        vs_fastembed=(_ratio(r.seconds, fastembed[0]), _ratio(r.seconds, fastembed[1])) if fastembed else None,
        short_ms=1e3 * statistics.median(r.short) if r.short else None,
        short_vs_baseline=_ratio(r.short, base.short) if r.short and base.short else None,
        cosine_min=cosine,
    )


def token_order(tokenizer_file: Path, texts: Sequence[str]) -> list[int]:
    """The texts' indices sorted by token count (what a caller pre-sorting for fastembed would do)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    lengths = [len(e.ids) for e in tok.encode_batch(list(texts))]
    return sorted(range(len(texts)), key=lengths.__getitem__)


def write_texts(workdir: Path, texts: Sequence[str]) -> Path:
    path = Path(tempfile.mkstemp(prefix="texts-", suffix=".json", dir=workdir)[1])
    path.write_text(json.dumps(list(texts), ensure_ascii=False), encoding="utf-8")
    return path


HEADER = (
    f"{'text tower':22} {'runtime':34} {'texts/s':>8} {'x base':>7} {'x fe':>5} {'x fe sorted':>11} "
    f"{'1 text ms':>9} {'x base':>7} {'cos min':>7}"
)


def format_text_row(r: TextRow) -> str:
    def f(v: float | None, spec: str) -> str:
        return format(v, spec) if v is not None else "-"

    fe_given, fe_sorted = r.vs_fastembed if r.vs_fastembed else (None, None)
    return (
        f"{r.case:22} {r.runtime:34} {r.texts_per_s:>8.1f} {r.vs_baseline:>6.2f}x {f(fe_given, '.2f'):>4}x "
        f"{f(fe_sorted, '.2f'):>10}x {f(r.short_ms, '.2f'):>9} {f(r.short_vs_baseline, '.2f'):>6}x "
        f"{f(r.cosine_min, '.4f'):>7}"
    )
