"""The CUDA path: sessions really on the GPU, embeddings as on the CPU. `pytest -m gpu` on a CUDA machine."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from indexers import load_model
from indexers.runtime import Model
from tests.helpers import make_image

TEXTS = ["a red bicycle", "a bowl of ramen with an egg", "café crème ☕", "a very long caption " * 30]


def _no_cuda_reason() -> str | None:
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return "this onnxruntime has no CUDAExecutionProvider: pip install 'mmsearch[gpu]'"
    gpus = Path("/proc/driver/nvidia/gpus")
    has_gpu = gpus.is_dir() and any(gpus.iterdir())
    if not has_gpu and shutil.which("nvidia-smi"):
        has_gpu = subprocess.run(["nvidia-smi", "-L"], capture_output=True, check=False).returncode == 0
    return None if has_gpu else "no NVIDIA GPU on this machine"


NO_CUDA = _no_cuda_reason()
# Skipped at collection, before the session fixtures export the tiny models.
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(NO_CUDA is not None, reason=NO_CUDA or "")]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _sessions(model: Model) -> list:
    return [e.session for e in (model.image, model.text) if e is not None]


@pytest.mark.parametrize("folder", ["tiny_clip_dir", "minilm_dir", "resnet_dir"])
def test_towers_run_on_cuda_and_agree_with_cpu(folder: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(folder)
    gpu = load_model(path, device="cuda")
    cpu = load_model(path, device="cpu")
    for session in _sessions(gpu):
        # Not a silent CPU fallback: onnxruntime-gpu does that when the CUDA libraries don't load.
        assert session.on_cuda and session.providers[0] == "CUDAExecutionProvider", session.providers
    assert not any(s.on_cuda for s in _sessions(cpu))
    if gpu.text is not None:
        assert _cosines(gpu.embed_texts(TEXTS), cpu.embed_texts(TEXTS)).min() >= 0.9999
    if gpu.image is not None:
        images = [make_image(seed=s, width=64 + 16 * s, height=48) for s in range(5)]
        assert _cosines(gpu.embed_images(images), cpu.embed_images(images)).min() >= 0.9999


def test_auto_device_picks_cuda(tiny_clip_dir: Path) -> None:
    model = load_model(tiny_clip_dir)
    assert all(s.on_cuda for s in _sessions(model))


def test_batches_on_cuda_are_independent_of_batching(minilm_dir: Path) -> None:
    model = load_model(minilm_dir, device="cuda")
    together = model.embed_texts(TEXTS)
    one_by_one = np.stack([model.embed_texts([t])[0] for t in TEXTS])
    assert _cosines(together, one_by_one).min() >= 0.9999
