"""torchvision's CUDA wheel beside a CPU torch: the patch must make it (and open_clip) import."""

import importlib.util
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is None, reason="torchvision is not installed (mmsearch[export])"
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_patched_import_gives_working_models_and_transforms():
    out = _run(
        "from indexers.export.torch_compat import import_torchvision\n"
        "tv = import_torchvision()\n"
        "import torch, open_clip, sentence_transformers\n"
        "net = tv.models.resnet18().eval()\n"
        "print(tuple(net(torch.zeros(2, 3, 64, 64)).shape))\n"
        "print(tv.transforms.CenterCrop(8)(torch.zeros(3, 10, 10)).shape[-1])\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(2,", "1000)", "8"]


def test_patch_is_a_no_op_when_torchvision_is_already_imported():
    out = _run(
        "from indexers.export.torch_compat import import_torchvision, patch_torchvision\n"
        "import_torchvision()\n"
        "print(patch_torchvision())\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_unpatched_import_fails_here_or_the_extension_loads():
    """Documents why the patch exists; if torchvision's own ops load, the patch must stay out."""
    plain = _run("import torchvision")
    patched = _run("from indexers.export.torch_compat import patch_torchvision; print(patch_torchvision())")
    assert patched.returncode == 0, patched.stderr
    if plain.returncode == 0:
        assert patched.stdout.strip() == "False"
    else:
        assert "torchvision::nms does not exist" in plain.stderr
        assert patched.stdout.strip() == "True"
