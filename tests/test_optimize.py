"""The optimised graph an export saves: fused operators, checked against PyTorch, kept plain when it fails."""

import logging

import numpy as np
import onnx
import pytest

from indexers import load_model
from indexers.export import export_model
from indexers.export import optimize as optimize_mod
from indexers.manifest import Manifest
from tests.conftest import TINY_CLIP_CFG

TEXTS = ["a red bicycle", "a bowl of ramen with an egg", "tacos al pastor, salsa verde y cilantro", "café ☕"]


def _ops(path):
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_minilm_is_saved_with_fused_attention_layernorm_and_gelu(minilm_dir):
    manifest = Manifest.load(minilm_dir)
    tower = manifest.towers["text"]
    assert tower.optimization is not None and tower.optimization.tool.startswith("onnxscript")
    assert tower.optimization.fused == {"Attention": 6, "SkipLayerNormalization": 12, "BiasGelu": 6}
    ops = _ops(minilm_dir / tower.file)
    assert ops.count("Attention") == 6 and "Softmax" not in ops and "Erf" not in ops
    assert len(ops) < 120  # the dynamo export had 250 nodes
    # The recorded parity is the saved graph's, within the export tolerance.
    assert manifest.parity_max_abs_diff["text"] <= manifest.parity_tolerance


@pytest.fixture(scope="module")
def plain_clip(models_dir):
    out = models_dir / "clip-tiny-plain"
    export_model("clip", out, architecture="tiny-test-clip", model_cfg=TINY_CLIP_CFG, weights="none", optimize=False)
    return out


def test_the_optimised_graph_embeds_as_the_plain_one(tiny_clip_dir, plain_clip):
    optimised, plain = Manifest.load(tiny_clip_dir), Manifest.load(plain_clip)
    assert optimised.towers["text"].optimization is not None and plain.towers["text"].optimization is None
    assert "MultiHeadAttention" in _ops(tiny_clip_dir / "text.onnx")
    assert "MultiHeadAttention" not in _ops(plain_clip / "text.onnx")
    # Only text towers opt in: the image tower is faster with onnxruntime's own fusions.
    assert optimised.towers["image"].optimization is None
    assert optimised.towers["image"].sha256 == plain.towers["image"].sha256
    a = load_model(tiny_clip_dir, device="cpu").embed_texts(TEXTS)
    b = load_model(plain_clip, device="cpu").embed_texts(TEXTS)
    np.testing.assert_allclose(a, b, atol=1e-5)


def _break_output(src, dst):
    """The graph with its output scaled by 0.5: still valid, no longer unit-norm."""
    model = onnx.load(str(src))
    out = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = [f"{o}__pre" if o == out else o for o in node.output]
    half = onnx.helper.make_tensor("half__", onnx.TensorProto.FLOAT, [], [0.5])
    model.graph.initializer.append(half)
    model.graph.node.append(onnx.helper.make_node("Mul", [f"{out}__pre", "half__"], [out]))
    onnx.save(model, str(dst))


@pytest.mark.parametrize("failure", ["raises", "breaks parity", "fuses nothing"])
def test_a_failed_optimisation_keeps_the_plain_graph_and_says_why(plain_clip, tmp_path, monkeypatch, caplog, failure):
    real = optimize_mod.optimize_graph

    def broken(src, dst):
        if failure == "raises":
            raise RuntimeError("no rule matched")
        record = real(src, dst)
        if failure == "breaks parity":
            _break_output(dst, dst)
            return record
        return record.model_copy(update={"fused": {}})

    monkeypatch.setattr(optimize_mod, "optimize_graph", broken)
    out = tmp_path / "clip"
    with caplog.at_level(logging.WARNING):
        manifest = export_model("clip", out, architecture="tiny-test-clip", model_cfg=TINY_CLIP_CFG, weights="none")
    tower = manifest.towers["text"]
    assert tower.optimization is None
    assert tower.sha256 == Manifest.load(plain_clip).towers["text"].sha256  # the plain graph, byte for byte
    assert not list(out.glob(".*optimized*"))
    message = {"raises": "no rule matched", "breaks parity": "disagrees", "fuses nothing": "fused nothing"}[failure]
    assert any(message in r.getMessage() and "plain" in r.getMessage() for r in caplog.records), caplog.text
