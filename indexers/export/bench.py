"""Encoder speed against same-run baselines: image towers (PyTorch eager vs ONNX fp32 vs int8) and
text towers (`indexers.export.bench_text`: sentence-transformers `encode()`, open_clip and
fastembed on the same varied texts).

Random weights: speed does not depend on them. Each model is exported once into a scratch folder
(with `quantize`, one int8 export, which keeps the fp32 graphs beside the int8 ones). Image rows
time `runs` forward passes per batch size after one warm-up; text rows alternate the runtimes in
`runs` rounds over the texts.
"""

from __future__ import annotations

import functools
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from indexers.export import bench_text, export_model
from indexers.export.sentences import varied_sentences
from indexers.export.torch_compat import import_torchvision
from indexers.manifest import Manifest
from indexers.onnx_session import OnnxSession
from mmsearch.errors import ConfigError, ExportError

import_torchvision()  # open_clip and sentence-transformers import torchvision; patch it first


@dataclass(frozen=True)
class Row:
    case: str
    batch: int
    torch_ips: float
    onnx_ips: float
    int8_ips: float | None
    int8_cosine: float | None

    @property
    def onnx_vs_torch(self) -> float:
        return self.onnx_ips / self.torch_ips

    @property
    def int8_vs_onnx(self) -> float | None:
        return None if self.int8_ips is None else self.int8_ips / self.onnx_ips


@dataclass
class _Case:
    name: str
    torch_fn: Callable[[int], Callable[[], object]]
    onnx_feeds: Callable[[int], dict[str, np.ndarray]]
    fp32: Path
    int8: Path | None
    int8_cosine: float | None


def _time(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up: first runs allocate and pick kernels
    started = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - started) / runs


def _images(n: int, size: int = 224) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, size, size), dtype=np.float32)


def _calibration_folder(root: Path, count: int = 16) -> Path:
    from PIL import Image

    folder = root / "calibration"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        pixels = (rng.random((256, 320, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return folder


def _graphs(folder: Path, manifest: Manifest, key: str) -> tuple[Path, Path | None, float | None]:
    """A tower's fp32 graph, its int8 graph (None without) and the int8 cosine to fp32."""
    tower = manifest.towers[key]
    if tower.int8 is None:
        return folder / tower.file, None, None
    return folder / tower.file, folder / tower.int8.file, tower.int8.cosine_to_fp32_mean


def _clip_export(root: Path, quantize: bool) -> tuple[Any, Path, Manifest]:
    """ViT-B-32 with seeded random weights, saved as a checkpoint and exported from it: PyTorch and
    the ONNX graphs then hold the same weights, so their embeddings can be compared too."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    checkpoint = root / "clip-random.pt"
    torch.save(model.state_dict(), checkpoint)
    out = root / "clip"
    manifest = export_model(
        "clip", out, architecture="ViT-B-32", weights=str(checkpoint), quantize="int8" if quantize else "none"
    )
    return model, out, manifest


def _clip_image_case(model: Any, out: Path, manifest: Manifest) -> _Case:
    return _Case(
        "clip ViT-B-32 image",
        lambda b: functools.partial(model.encode_image, torch.from_numpy(_images(b)), normalize=True),
        lambda b: {"pixel_values": _images(b)},
        *_graphs(out, manifest, "image"),
    )


def _resnet_case(root: Path, quantize: bool) -> _Case:
    tv = import_torchvision()
    options: dict[str, Any] = {"quantize": "int8", "calibration": _calibration_folder(root)} if quantize else {}
    out = root / "resnet"
    manifest = export_model("resnet", out, architecture="resnet50", weights="none", overwrite=True, **options)
    net = tv.models.resnet50()
    net.fc = torch.nn.Identity()
    net.eval()
    return _Case(
        "resnet50",
        lambda b: functools.partial(net, torch.from_numpy(_images(b))),
        lambda b: {"pixel_values": _images(b)},
        *_graphs(out, manifest, "image"),
    )


def _measure(case: _Case, batches: Sequence[int], threads: int, runs: int) -> list[Row]:
    fp32 = OnnxSession(case.fp32, device="cpu", threads=threads)
    int8 = OnnxSession(case.int8, device="cpu", threads=threads) if case.int8 else None
    rows = []
    for b in batches:
        with torch.inference_mode():
            t_torch = _time(case.torch_fn(b), runs)
        feeds = case.onnx_feeds(b)
        t_onnx = _time(functools.partial(fp32.run, feeds), runs)
        t_int8 = _time(functools.partial(int8.run, feeds), runs) if int8 else None
        rows.append(Row(case.name, b, b / t_torch, b / t_onnx, b / t_int8 if t_int8 else None, case.int8_cosine))
    return rows


DEFAULT_TEXTS = 2000
DEFAULT_TEXT_BATCH = 32


@dataclass(frozen=True)
class TextPlan:
    """What every text row shares: the texts, threads, rounds, batch size, fastembed, scratch folder."""

    texts: list[str]
    threads: int
    rounds: int
    batch: int
    fastembed_python: str | None
    root: Path


@dataclass
class Results:
    """The image rows (torch vs ONNX) and the text rows (against their baselines)."""

    images: list[Row] = field(default_factory=list)
    texts: list[bench_text.TextRow] = field(default_factory=list)


def _mmsearch_runtimes(folder: Path, plan: TextPlan, quantize: bool) -> list[bench_text.Runtime]:
    from indexers.runtime import load_model

    out = []
    for precision in ("fp32", "int8") if quantize else ("fp32",):
        model = load_model(folder, device="cpu", precision=precision, threads=plan.threads, batch_size=plan.batch)
        out.append(bench_text.Runtime(f"mmsearch {precision}", model.embed_texts, _one(model.embed_texts)))
    return out


def _one(embed: Callable[[list[str]], np.ndarray]) -> Callable[[str], np.ndarray]:
    return lambda text: embed([text])


def _fastembed(folder: Path, manifest: Manifest, plan: TextPlan) -> Callable[[], dict] | None:
    """One fastembed round on the fp32 text graph of `folder`, or None without fastembed."""
    if plan.fastembed_python is None:
        return None
    from tokenizers import Tokenizer

    tower = manifest.towers["text"]
    if tower.tokenizer is None:
        raise ExportError(f"{folder} has no tokenizer config")
    tokenizer = folder / tower.tokenizer.file
    pad = Tokenizer.from_file(str(tokenizer)).id_to_token(tower.tokenizer.pad_id) or "[PAD]"
    runner = bench_text.Fastembed(
        plan.fastembed_python,
        folder / tower.file,
        tokenizer,
        output=tower.output,
        pad=(pad, tower.tokenizer.pad_id),
        max_length=tower.tokenizer.context_length,
        workdir=plan.root,
    )
    texts_file = bench_text.write_texts(plan.root, plan.texts)
    order = bench_text.token_order(tokenizer, plan.texts)
    return lambda: runner.run(
        texts_file, order, dim=tower.dim, threads=plan.threads, batch=plan.batch, short_runs=bench_text.SHORT_RUNS
    )


def _minilm_text(model_dir: str, plan: TextPlan, quantize: bool) -> list[bench_text.TextRow]:
    """MiniLM: `SentenceTransformer.encode()` against mmsearch fp32/int8 and fastembed, same texts."""
    from sentence_transformers import SentenceTransformer

    out = plan.root / "minilm"
    manifest = export_model("bert", out, model=model_dir, quantize="int8" if quantize else "none", overwrite=True)
    st = SentenceTransformer(model_dir, device="cpu")

    def encode(texts: list[str]) -> np.ndarray:
        return st.encode(texts, batch_size=plan.batch, normalize_embeddings=True, show_progress_bar=False)

    baseline = bench_text.Runtime("sentence-transformers encode()", encode, lambda t: encode([t]))
    return bench_text.bench_text_case(
        "minilm-l6 text",
        plan.texts,
        baseline,
        _mmsearch_runtimes(out, plan, quantize),
        _fastembed(out, manifest, plan),
        rounds=plan.rounds,
        short_runs=bench_text.SHORT_RUNS,
    )


def _clip_text(model: Any, folder: Path, plan: TextPlan, quantize: bool) -> list[bench_text.TextRow]:
    """CLIP's text tower: open_clip's `encode_text` (77-token rows) against mmsearch and fastembed."""
    import open_clip

    tokenize = open_clip.get_tokenizer("ViT-B-32")

    def encode(texts: list[str]) -> np.ndarray:
        parts = []
        with torch.inference_mode():
            for start in range(0, len(texts), plan.batch):
                ids = tokenize(texts[start : start + plan.batch])
                parts.append(model.encode_text(ids, normalize=True).numpy())
        return np.concatenate(parts)

    baseline = bench_text.Runtime("open_clip encode_text()", encode, lambda t: encode([t]))
    manifest = Manifest.load(folder, verify=False)
    return bench_text.bench_text_case(
        "clip ViT-B-32 text",
        plan.texts,
        baseline,
        _mmsearch_runtimes(folder, plan, quantize),
        _fastembed(folder, manifest, plan),
        rounds=plan.rounds,
        short_runs=bench_text.SHORT_RUNS,
    )


def run(
    batches: Sequence[int] = (1, 32),
    *,
    threads: int | None = None,
    runs: int = 3,
    quantize: bool = True,
    only: Sequence[str] = ("clip", "resnet", "bert"),
    bert_model: str | None = None,
    texts: int = DEFAULT_TEXTS,
    fastembed_python: str | None = None,
    workdir: Path | None = None,
    log: Callable[[str], None] = print,
) -> Results:
    """Export the default architectures and time them against their baselines in one run.

    Args:
        batches: batch sizes of the image rows.
        threads: threads for every runtime (torch, onnxruntime, fastembed); None: all usable CPUs.
        runs: timed passes per image cell; rounds of the text rows.
        quantize: also export and time the int8 graphs.
        only: which families: `clip` (image and text towers), `resnet`, `bert` (needs `bert_model`).
        bert_model: the sentence-transformers folder or hub name of the bert row.
        texts: how many varied sentences the text rows embed (`indexers.export.sentences`).
        fastembed_python: an interpreter with fastembed for its text rows; None: this one when it
            can import fastembed, else no fastembed rows.
        workdir: where the scratch folder goes.
        log: progress and result lines.

    Returns:
        The image rows and the text rows.
    """
    from indexers.onnx_session import usable_cpus

    threads = threads or usable_cpus()
    torch.set_num_threads(threads)
    fe_python = fastembed_python or (sys.executable if bench_text.fastembed_works(sys.executable) else None)
    if fastembed_python and not bench_text.fastembed_works(fastembed_python):
        raise ConfigError(f"--fastembed-python {fastembed_python!r} cannot import fastembed")
    results = Results()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        sentences = varied_sentences(texts)
        plan = TextPlan(sentences, threads, runs, DEFAULT_TEXT_BATCH, fe_python, root)
        if "clip" in only:
            log("exporting ViT-B-32 (fp32 and int8)...")
            model, out, manifest = _clip_export(root, quantize)
            results.images += _measure_logged(_clip_image_case(model, out, manifest), batches, threads, runs, log)
            results.texts += _logged(_clip_text(model, out, plan, quantize), log)
        if "resnet" in only:
            log("exporting ResNet-50 (fp32 and static int8)...")
            results.images += _measure_logged(_resnet_case(root, quantize), batches, threads, runs, log)
        if "bert" in only and bert_model:
            log("exporting MiniLM-L6 (fp32 and int8)...")
            results.texts += _logged(_minilm_text(bert_model, plan, quantize), log)
    return results


def _measure_logged(
    case: _Case, batches: Sequence[int], threads: int, runs: int, log: Callable[[str], None]
) -> list[Row]:
    rows = _measure(case, batches, threads, runs)
    log(HEADER)
    for row in rows:
        log(format_row(row))
    return rows


def _logged(rows: list[bench_text.TextRow], log: Callable[[str], None]) -> list[bench_text.TextRow]:
    log(bench_text.HEADER)
    for row in rows:
        log(bench_text.format_text_row(row))
    return rows


HEADER = (
    f"{'encoder':32} {'batch':>5} {'torch/s':>9} {'onnx/s':>9} {'int8/s':>9} "
    f"{'onnx/torch':>10} {'int8/onnx':>9} {'int8 cos':>8}"
)


def format_row(r: Row) -> str:
    def f(v: float | None, spec: str) -> str:
        return format(v, spec) if v is not None else "-"

    return (
        f"{r.case:32} {r.batch:>5} {r.torch_ips:>9.1f} {r.onnx_ips:>9.1f} {f(r.int8_ips, '>9.1f'):>9} "
        f"{r.onnx_vs_torch:>9.2f}x {f(r.int8_vs_onnx, '>8.2f'):>8}x {f(r.int8_cosine, '.4f'):>8}"
    )
