"""Encoder throughput: PyTorch eager vs ONNX fp32 vs ONNX int8, same machine, same run.

Random weights: speed does not depend on them. Each case exports its model into a scratch folder
(with `quantize`, one int8 export, which keeps the fp32 graphs beside the int8 ones), then times
`runs` forward passes per batch size after one warm-up.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from indexers.export import export_model
from indexers.export.torch_compat import import_torchvision
from indexers.manifest import Manifest
from indexers.onnx_session import OnnxSession
from mmsearch.errors import ExportError

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


def _clip_cases(root: Path, quantize: bool) -> list[_Case]:
    import open_clip

    out = root / "clip"
    manifest = export_model(
        "clip", out, architecture="ViT-B-32", weights="none", quantize="int8" if quantize else "none", overwrite=True
    )
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    ids = np.zeros((1, 77), dtype=np.int64)
    ids[0, :20] = np.arange(1, 21)
    ids[0, 0], ids[0, 19] = 49406, 49407

    def text_feeds(b: int) -> dict[str, np.ndarray]:
        return {"input_ids": np.repeat(ids, b, axis=0)}

    return [
        _Case(
            "clip ViT-B-32 image",
            lambda b: functools.partial(model.encode_image, torch.from_numpy(_images(b)), normalize=True),
            lambda b: {"pixel_values": _images(b)},
            *_graphs(out, manifest, "image"),
        ),
        _Case(
            "clip ViT-B-32 text (77 tokens)",
            lambda b: functools.partial(
                model.encode_text, torch.from_numpy(text_feeds(b)["input_ids"]), normalize=True
            ),
            text_feeds,
            *_graphs(out, manifest, "text"),
        ),
    ]


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


def _minilm_case(root: Path, quantize: bool, model_dir: str) -> _Case:
    from sentence_transformers import SentenceTransformer

    from indexers.text import TextTokenizer

    out = root / "minilm"
    manifest = export_model("bert", out, model=model_dir, quantize="int8" if quantize else "none", overwrite=True)
    st = SentenceTransformer(model_dir, device="cpu")
    tokenizer = manifest.towers["text"].tokenizer
    if tokenizer is None:
        raise ExportError(f"the bert export of {model_dir!r} has no tokenizer config")
    tok = TextTokenizer(out / tokenizer.file, tokenizer)
    text = "a cosy family restaurant with wood-fired pizza and friendly staff"

    def feeds(b: int) -> dict[str, np.ndarray]:
        return tok.encode([text] * b)

    def torch_fn(b: int) -> Callable[[], object]:
        batch = {k: torch.from_numpy(v) for k, v in feeds(b).items()}
        return lambda: st(batch)

    return _Case("minilm-l6 text", torch_fn, feeds, *_graphs(out, manifest, "text"))


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


def run(
    batches: Sequence[int] = (1, 32),
    *,
    threads: int | None = None,
    runs: int = 3,
    quantize: bool = True,
    only: Sequence[str] = ("clip", "resnet", "bert"),
    bert_model: str | None = None,
    workdir: Path | None = None,
    log: Callable[[str], None] = print,
) -> list[Row]:
    """Export the default architectures and time them; returns one Row per case and batch size."""
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        cases: list[_Case] = []
        if "clip" in only:
            log("exporting ViT-B-32 (fp32 and int8)...")
            cases += _clip_cases(root, quantize)
        if "resnet" in only:
            log("exporting ResNet-50 (fp32 and static int8)...")
            cases.append(_resnet_case(root, quantize))
        if "bert" in only and bert_model:
            log("exporting MiniLM-L6 (fp32 and int8)...")
            cases.append(_minilm_case(root, quantize, bert_model))
        for case in cases:
            for row in _measure(case, batches, threads, runs):
                log(format_row(row))
                rows.append(row)
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
