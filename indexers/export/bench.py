"""Encoder throughput: PyTorch eager vs ONNX fp32 vs ONNX int8, same machine, same run.

Random weights: speed does not depend on them. Each case exports its model into a scratch folder,
then times `runs` forward passes per batch size after one warm-up.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from indexers.export import export_model
from indexers.export.torch_compat import import_torchvision
from indexers.onnx_session import OnnxSession

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


def _clip_cases(root: Path, quantize: bool) -> list[_Case]:
    import open_clip

    out = root / "clip"
    manifest = export_model("clip", out, architecture="ViT-B-32", weights="none", overwrite=True)
    q = (
        export_model(
            "clip", root / "clip-int8", architecture="ViT-B-32", weights="none", quantize="int8", overwrite=True
        )
        if quantize
        else None
    )
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    ids = np.zeros((1, 77), dtype=np.int64)
    ids[0, :20] = np.arange(1, 21)
    ids[0, 0], ids[0, 19] = 49406, 49407

    def text_feeds(b: int) -> dict[str, np.ndarray]:
        return {"input_ids": np.repeat(ids, b, axis=0)}

    cos = q.quantization.cosine_to_fp32_mean if q and q.quantization else None
    return [
        _Case(
            "clip ViT-B-32 image",
            lambda b: functools.partial(model.encode_image, torch.from_numpy(_images(b)), normalize=True),
            lambda b: {"pixel_values": _images(b)},
            out / manifest.towers["image"].file,
            q and root / "clip-int8" / q.towers["image"].file,
            cos,
        ),
        _Case(
            "clip ViT-B-32 text (77 tokens)",
            lambda b: functools.partial(
                model.encode_text, torch.from_numpy(text_feeds(b)["input_ids"]), normalize=True
            ),
            text_feeds,
            out / manifest.towers["text"].file,
            q and root / "clip-int8" / q.towers["text"].file,
            cos,
        ),
    ]


def _resnet_case(root: Path, quantize: bool) -> _Case:
    tv = import_torchvision()
    manifest = export_model("resnet", root / "resnet", architecture="resnet50", weights="none", overwrite=True)
    q = None
    if quantize:
        q = export_model(
            "resnet",
            root / "resnet-int8",
            architecture="resnet50",
            weights="none",
            quantize="int8",
            calibration=_calibration_folder(root),
            overwrite=True,
        )
    net = tv.models.resnet50()
    net.fc = torch.nn.Identity()
    net.eval()
    return _Case(
        "resnet50",
        lambda b: functools.partial(net, torch.from_numpy(_images(b))),
        lambda b: {"pixel_values": _images(b)},
        root / "resnet" / manifest.towers["image"].file,
        q and root / "resnet-int8" / q.towers["image"].file,
        q.quantization.cosine_to_fp32_mean if q and q.quantization else None,
    )


def _minilm_case(root: Path, quantize: bool, model_dir: str) -> _Case:
    from sentence_transformers import SentenceTransformer

    from indexers.text import TextTokenizer

    manifest = export_model("bert", root / "minilm", model=model_dir, overwrite=True)
    q = (
        export_model("bert", root / "minilm-int8", model=model_dir, quantize="int8", overwrite=True)
        if quantize
        else None
    )
    st = SentenceTransformer(model_dir, device="cpu")
    tower = manifest.towers["text"]
    tok = TextTokenizer(root / "minilm" / tower.tokenizer.file, tower.tokenizer)
    text = "a cosy family restaurant with wood-fired pizza and friendly staff"

    def feeds(b: int) -> dict[str, np.ndarray]:
        return tok.encode([text] * b)

    def torch_fn(b: int) -> Callable[[], object]:
        batch = {k: torch.from_numpy(v) for k, v in feeds(b).items()}
        return lambda: st(batch)

    return _Case(
        "minilm-l6 text",
        torch_fn,
        feeds,
        root / "minilm" / tower.file,
        q and root / "minilm-int8" / q.towers["text"].file,
        q.quantization.cosine_to_fp32_mean if q and q.quantization else None,
    )


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
            fp32 = OnnxSession(case.fp32, device="cpu", threads=threads)
            int8 = OnnxSession(case.int8, device="cpu", threads=threads) if case.int8 else None
            for b in batches:
                with torch.inference_mode():
                    t_torch = _time(case.torch_fn(b), runs)
                feeds = case.onnx_feeds(b)
                t_onnx = _time(lambda s=fp32, f=feeds: s.run(f), runs)
                t_int8 = _time(lambda s=int8, f=feeds: s.run(f), runs) if int8 else None
                row = Row(case.name, b, b / t_torch, b / t_onnx, b / t_int8 if t_int8 else None, case.int8_cosine)
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
