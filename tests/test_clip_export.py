"""The clip family: open_clip -> image.onnx + text.onnx + tokenizer.json, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from conftest import TINY_CLIP_CFG

from indexers.export import export_model
from indexers.manifest import Manifest
from indexers.text import TextTokenizer
from mmsearch.errors import ConfigError, ExportError, UnknownNameError, WeightsError
from mmsearch.files import sha256_file

if TYPE_CHECKING:
    from torch import nn

TINY = "tiny-test-clip"
TEXTS = [
    "a photo of a cat",
    "a red bus on a busy street at night, photographed from across the road",
    "東京 🚀 café",
    " ".join(["a caption longer than the context"] * 15),
    "",
]


def _torch():
    import torch

    return torch


def _open_clip():
    from indexers.export.torch_compat import patch_torchvision

    patch_torchvision()
    import open_clip

    return open_clip


def run(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    from indexers.export.common import run_onnx

    return run_onnx(path, feeds)


@pytest.fixture(scope="module")
def tiny_model() -> nn.Module:
    """The PyTorch model the tiny export was made from: seeded random init rebuilds it."""
    from indexers.export.clip import ClipExportConfig, load_clip

    return load_clip(ClipExportConfig(architecture=TINY, model_cfg=TINY_CLIP_CFG)).model


@pytest.fixture(scope="module")
def manifest(tiny_clip_dir: Path) -> Manifest:
    return Manifest.load(tiny_clip_dir)


@pytest.fixture(scope="module")
def tokenizer(tiny_clip_dir: Path, manifest: Manifest) -> TextTokenizer:
    cfg = manifest.towers["text"].tokenizer
    assert cfg is not None
    return TextTokenizer(tiny_clip_dir / cfg.file, cfg)


def torch_text(model: nn.Module, texts: list[str]) -> np.ndarray:
    """open_clip's own path: tokenize() padded to 77, encode_text(normalize=True)."""
    with _torch().no_grad():
        return model.encode_text(_open_clip().tokenize(texts), normalize=True).numpy()


def torch_image(model: nn.Module, pixels: np.ndarray) -> np.ndarray:
    with _torch().no_grad():
        return model.encode_image(_torch().from_numpy(pixels), normalize=True).numpy()


# --- manifest ----------------------------------------------------------------------------------


def test_manifest_describes_the_export(tiny_clip_dir: Path, manifest: Manifest) -> None:
    assert manifest.family == "clip"
    assert manifest.name == tiny_clip_dir.name
    assert manifest.architecture == TINY
    assert manifest.weights.kind == "none" and manifest.weights.sha256 is None
    assert manifest.opset == 18
    assert set(manifest.towers) == {"image", "text"}
    assert manifest.quantization is None
    for key, tower in manifest.towers.items():
        assert tower.modality == key
        assert tower.file == f"{key}.onnx" and tower.int8 is None
        assert tower.output == f"{key}_embeds"
        assert tower.dim == TINY_CLIP_CFG["embed_dim"]
        assert tower.distance == "cosine" and tower.normalized
    assert set(manifest.parity_max_abs_diff) == {"image", "text"}
    assert all(0 <= d <= manifest.parity_tolerance for d in manifest.parity_max_abs_diff.values())
    assert {"torch", "onnx", "onnxruntime", "open_clip_torch", "tokenizers"} <= set(manifest.toolchain)


def test_manifest_hashes_match_the_files(tiny_clip_dir: Path, manifest: Manifest) -> None:
    files = manifest.files()
    assert set(files) == {"image.onnx", "text.onnx", "tokenizer.json"}
    for name, digest in files.items():
        assert sha256_file(tiny_clip_dir / name) == digest
    assert sorted(p.name for p in tiny_clip_dir.iterdir()) == [
        ".verified.json",
        "image.onnx",
        "manifest.json",
        "text.onnx",
        "tokenizer.json",
    ]


def test_manifest_preprocess_is_open_clips(manifest: Manifest) -> None:
    open_clip = _open_clip()
    pre = manifest.towers["image"].preprocess
    assert pre is not None and manifest.towers["text"].preprocess is None
    assert pre.size == (32, 32) and pre.resize_size == 32
    assert pre.resize_mode == "shortest" and pre.interpolation == "bicubic"
    assert pre.mean == pytest.approx(open_clip.OPENAI_DATASET_MEAN)
    assert pre.std == pytest.approx(open_clip.OPENAI_DATASET_STD)


def test_manifest_tokenizer_config(manifest: Manifest) -> None:
    tok = manifest.towers["text"].tokenizer
    assert tok is not None and manifest.towers["image"].tokenizer is None
    assert (tok.file, tok.context_length, tok.pad_id, tok.clean) == ("tokenizer.json", 77, 0, "clip")
    assert tok.trim_to_longest is True
    assert tok.input_names == ("input_ids",)


# --- graphs ------------------------------------------------------------------------------------


def test_graph_signatures(tiny_clip_dir: Path) -> None:
    import onnx

    def dims(value: onnx.ValueInfoProto) -> list[str | int]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    image = onnx.load(str(tiny_clip_dir / "image.onnx"), load_external_data=False).graph
    text = onnx.load(str(tiny_clip_dir / "text.onnx"), load_external_data=False).graph
    assert [i.name for i in image.input] == ["pixel_values"]
    assert [o.name for o in image.output] == ["image_embeds"]
    assert [i.name for i in text.input] == ["input_ids"]
    assert [o.name for o in text.output] == ["text_embeds"]
    assert isinstance(dims(image.input[0])[0], str) and dims(image.input[0])[1:] == [3, 32, 32]
    assert all(isinstance(d, str) for d in dims(text.input[0]))  # dynamic batch and sequence
    assert text.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64


@pytest.mark.parametrize("batch", [1, 3, 5])
def test_image_graph_dynamic_batch_matches_torch(tiny_clip_dir: Path, tiny_model: nn.Module, batch: int) -> None:
    pixels = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    got = run(tiny_clip_dir / "image.onnx", {"pixel_values": pixels})
    assert got.shape == (batch, 32)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, torch_image(tiny_model, pixels), atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3, 5])
def test_text_graph_dynamic_batch_matches_torch(
    tiny_clip_dir: Path, tokenizer: TextTokenizer, tiny_model: nn.Module, batch: int
) -> None:
    texts = TEXTS[:batch]
    got = run(tiny_clip_dir / "text.onnx", tokenizer.encode(texts))
    assert got.shape == (batch, 32)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, torch_text(tiny_model, texts), atol=1e-5)


def test_trimmed_input_equals_77_padding(tiny_clip_dir: Path, tokenizer: TextTokenizer, tiny_model: nn.Module) -> None:
    texts = ["a cat", "a dog on a sofa", "hi"]
    trimmed = tokenizer.encode(texts)["input_ids"]
    padded = _open_clip().tokenize(texts).numpy()
    assert trimmed.shape == (3, 7)
    onnx_trimmed = run(tiny_clip_dir / "text.onnx", {"input_ids": trimmed})
    onnx_padded = run(tiny_clip_dir / "text.onnx", {"input_ids": padded})
    np.testing.assert_allclose(onnx_trimmed, onnx_padded, atol=1e-6)
    np.testing.assert_allclose(onnx_trimmed, torch_text(tiny_model, texts), atol=1e-5)


@pytest.mark.parametrize("length", [1, 2, 5, 40, 77])
def test_text_graph_runs_at_any_length(tiny_clip_dir: Path, tiny_model: nn.Module, length: int) -> None:
    torch = _torch()
    ids = np.random.default_rng(length).integers(1, 49406, (2, length), dtype=np.int64)
    ids[:, -1] = 49407  # EOT last: argmax pooling reads it
    got = run(tiny_clip_dir / "text.onnx", {"input_ids": ids})
    # Reference: the same ids padded to 77 through open_clip's encode_text.
    padded = np.zeros((2, 77), dtype=np.int64)
    padded[:, :length] = ids
    with torch.no_grad():
        expected = tiny_model.encode_text(torch.from_numpy(padded), normalize=True).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_text_graph_refuses_more_than_context_length(tiny_clip_dir: Path) -> None:
    """Past 77 there are no positional rows: the graph fails instead of embedding garbage."""
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail

    ids = np.full((1, 78), 1, dtype=np.int64)
    with pytest.raises(Fail, match="77 by 78"):
        run(tiny_clip_dir / "text.onnx", {"input_ids": ids})


def test_real_images_through_open_clip_transform_match_torch(tiny_clip_dir: Path, tiny_model: nn.Module) -> None:
    from indexers.export.clip import parity_images, parity_pixels

    manifest = Manifest.load(tiny_clip_dir)
    pre = manifest.towers["image"].preprocess
    pixels = parity_pixels(
        {
            "size": pre.size,
            "mean": pre.mean,
            "std": pre.std,
            "interpolation": pre.interpolation,
            "resize_mode": pre.resize_mode,
        }
    )
    assert pixels.shape == (len(parity_images()), 3, 32, 32)
    got = run(tiny_clip_dir / "image.onnx", {"pixel_values": pixels.numpy()})
    expected = torch_image(tiny_model, pixels.numpy())
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # Distinct images give distinct embeddings: the graph isn't ignoring its input.
    assert np.abs(got[0] - got[1]).max() > 1e-3


# --- weights file and int8 ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    """A checkpoint for the tiny architecture with weights unlike the seeded random init."""
    from indexers.export.clip import build_model

    torch = _torch()
    model = build_model(TINY, TINY_CLIP_CFG)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(7)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    torch.save(model.state_dict(), path)
    return path, model.eval()


@pytest.fixture(scope="module")
def int8_dir(models_dir: Path, other_weights: tuple[Path, nn.Module]) -> Path:
    out = models_dir / "clip-tiny-int8"
    export_model(
        "clip", out, architecture=TINY, model_cfg=TINY_CLIP_CFG, weights=str(other_weights[0]), quantize="int8"
    )
    return out


def test_weights_file_is_loaded_and_recorded(
    int8_dir: Path, other_weights: tuple[Path, nn.Module], tiny_model: nn.Module
) -> None:
    path, model = other_weights
    manifest = Manifest.load(int8_dir)
    assert manifest.weights.kind == "file"
    assert manifest.weights.name == str(path)
    assert manifest.weights.sha256 == sha256_file(path)
    cfg = manifest.towers["text"].tokenizer
    feeds = TextTokenizer(int8_dir / cfg.file, cfg).encode(TEXTS)
    got = run(int8_dir / "text.int8.onnx", feeds)
    cos_loaded = np.sum(got * torch_text(model, TEXTS), axis=1)
    cos_random = np.sum(got * torch_text(tiny_model, TEXTS), axis=1)
    assert cos_loaded.min() > 0.98  # int8 of the checkpoint's weights...
    assert cos_random.max() < cos_loaded.min()  # ...not of the random init


def test_int8_export_keeps_fp32_and_adds_int8_graphs(int8_dir: Path) -> None:
    import onnx

    manifest = Manifest.load(int8_dir)
    q = manifest.quantization
    assert q is not None and q.method == "dynamic-int8"
    assert 0.98 < q.cosine_to_fp32_min <= q.cosine_to_fp32_mean <= 1.0 + 1e-6
    assert sorted(p.name for p in int8_dir.iterdir()) == [
        ".verified.json",
        "calibration",
        "image.int8.onnx",
        "image.onnx",
        "manifest.json",
        "text.int8.onnx",
        "text.onnx",
        "tokenizer.json",
    ]
    int8_ops = {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul"}
    for key, tower in manifest.towers.items():
        assert tower.int8 is not None
        assert (tower.file, tower.int8.file) == (f"{key}.onnx", f"{key}.int8.onnx")
        assert tower.sha256 == sha256_file(int8_dir / tower.file)
        assert tower.int8.sha256 == sha256_file(int8_dir / tower.int8.file)
        assert tower.int8.method == "dynamic-int8"
        assert 0.98 < tower.int8.cosine_to_fp32_min <= tower.int8.cosine_to_fp32_mean <= 1.0 + 1e-6
        fp32_ops = {n.op_type for n in onnx.load(str(int8_dir / tower.file)).graph.node}
        ops = {n.op_type for n in onnx.load(str(int8_dir / tower.int8.file)).graph.node}
        assert not fp32_ops & int8_ops, fp32_ops
        assert ops & int8_ops, ops
    # The model's summary is its worst tower.
    assert q.cosine_to_fp32_min == min(t.int8.cosine_to_fp32_min for t in manifest.towers.values() if t.int8)
    assert q.cosine_to_fp32_mean == min(t.int8.cosine_to_fp32_mean for t in manifest.towers.values() if t.int8)
    pixels = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    assert run(int8_dir / "image.int8.onnx", {"pixel_values": pixels}).shape == (3, 32)


# --- a bidirectional CustomTextCLIP (MobileCLIP-S-style text tower) --------------------------


def test_bidirectional_custom_text_model_pads_to_context(tmp_path: Path) -> None:
    """Without the causal mask padding changes the output, so the model must get 77-wide input."""
    from indexers.export.clip import ClipExportConfig, load_clip

    cfg = {**TINY_CLIP_CFG, "custom_text": True, "text_cfg": {**TINY_CLIP_CFG["text_cfg"], "no_causal_mask": True}}
    out = tmp_path / "bidi"
    manifest = export_model("clip", out, architecture="tiny-bidi", model_cfg=cfg)
    tok_cfg = manifest.towers["text"].tokenizer
    assert tok_cfg.trim_to_longest is False
    assert all(d <= manifest.parity_tolerance for d in manifest.parity_max_abs_diff.values())

    model = load_clip(ClipExportConfig(architecture="tiny-bidi", model_cfg=cfg)).model
    assert type(model).__name__ == "CustomTextCLIP"
    feeds = TextTokenizer(out / tok_cfg.file, tok_cfg).encode(TEXTS[:2])
    assert feeds["input_ids"].shape == (2, 77)
    full = run(out / "text.onnx", feeds)
    np.testing.assert_allclose(full, torch_text(model, TEXTS[:2]), atol=1e-5)
    trimmed = run(out / "text.onnx", {"input_ids": feeds["input_ids"][:, :20]})
    assert np.abs(trimmed - full).max() > 1e-3  # why trimming is off for this tower


# --- errors ------------------------------------------------------------------------------------


def test_unknown_architecture_lists_known(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError) as info:
        export_model("clip", tmp_path / "m", architecture="ViT-Z-99")
    assert "ViT-Z-99" in str(info.value) and "ViT-B-32" in str(info.value)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("architecture", ["ViT-B-16-SigLIP", "coca_ViT-B-32", "roberta-ViT-B-32", "nllb-clip-base"])
def test_architecture_without_bpe_tokenizer_is_refused(tmp_path: Path, architecture: str) -> None:
    with pytest.raises(ConfigError) as info:
        export_model("clip", tmp_path / "m", architecture=architecture)
    message = str(info.value)
    assert architecture in message and "SimpleTokenizer" in message
    assert "ViT-B-32," in message and "ViT-L-14," in message  # the supported ones are listed
    assert not isinstance(info.value, UnknownNameError)


def test_supported_architectures() -> None:
    from indexers.export.clip import supported_architectures

    supported = supported_architectures()
    assert {"ViT-B-32", "ViT-B-16", "ViT-L-14", "RN50", "ViT-B-32-quickgelu"} <= set(supported)
    assert not {"ViT-B-16-SigLIP", "coca_ViT-B-32", "roberta-ViT-B-32", "ViT-H-14-CLIPA"} & set(supported)


@pytest.mark.parametrize("architecture", ["ViT-B-32", "RN50", "MobileCLIP-S1", "PE-Core-B-16", "EVA02-B-16"])
def test_supported_means_open_clip_uses_the_default_simple_tokenizer(architecture: str) -> None:
    from indexers.export.clip import supported_architectures

    tokenizer = _open_clip().get_tokenizer(architecture)
    assert architecture in supported_architectures()
    assert type(tokenizer).__name__ == "SimpleTokenizer"
    assert tokenizer.reduction_fn is None and tokenizer.clean_fn.__name__ == "_clean_lower"


def test_custom_config_with_hf_tokenizer_is_refused(tmp_path: Path) -> None:
    cfg = {**TINY_CLIP_CFG, "text_cfg": {**TINY_CLIP_CFG["text_cfg"], "hf_tokenizer_name": "bert-base-uncased"}}
    with pytest.raises(ConfigError, match="bert-base-uncased"):
        export_model("clip", tmp_path / "m", architecture="my-clip", model_cfg=cfg)


def test_custom_config_missing_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="my-clip.*text_cfg"):
        export_model("clip", tmp_path / "m", architecture="my-clip", model_cfg={"embed_dim": 8, "vision_cfg": {}})


def test_weights_of_another_architecture(tmp_path: Path) -> None:
    from indexers.export.clip import build_model

    other = {**TINY_CLIP_CFG, "embed_dim": 16}
    path = tmp_path / "other.pt"
    _torch().save(build_model("other", other).state_dict(), path)
    with pytest.raises(WeightsError) as info:
        export_model("clip", tmp_path / "m", architecture=TINY, model_cfg=TINY_CLIP_CFG, weights=str(path))
    assert str(path) in str(info.value) and TINY in str(info.value)
    assert "size mismatch" in str(info.value)
    assert not (tmp_path / "m").exists()


def test_garbage_weights_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(WeightsError) as info:
        export_model("clip", tmp_path / "m", architecture=TINY, model_cfg=TINY_CLIP_CFG, weights=str(path))
    assert str(path) in str(info.value) and TINY in str(info.value)


def test_empty_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    with pytest.raises(WeightsError, match="empty.safetensors"):
        export_model("clip", tmp_path / "m", architecture=TINY, model_cfg=TINY_CLIP_CFG, weights=str(path))


def test_unknown_tag_lists_the_architectures_tags(tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as info:
        export_model("clip", tmp_path / "m", architecture="ViT-B-32", weights="laion-typo")
    assert "laion-typo" in str(info.value) and "laion2b_s34b_b79k" in str(info.value)


def test_tag_that_cannot_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    # Offline, with an empty cache: open_clip's hub download must fail, never reach the network.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsError) as info:
        export_model("clip", tmp_path / "m", architecture="ViT-B-32", weights="openai")
    message = str(info.value)
    assert "download" in message and "'openai'" in message and "--weights none" in message


def test_existing_out_dir_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="overwrite"):
        export_model("clip", out, architecture=TINY, model_cfg=TINY_CLIP_CFG)
    assert (out / "keep.txt").read_text() == "mine"


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pretrained"):
        export_model("clip", tmp_path / "m", architecture=TINY, pretrained="openai")


# --- full size ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_vit_b_32_random_weights_export(tmp_path: Path) -> None:
    from indexers.export.clip import ClipExportConfig, load_clip

    out = tmp_path / "vit-b-32"
    manifest = export_model("clip", out, architecture="ViT-B-32", weights="none")
    assert Manifest.load(out) == manifest
    assert all(d < 1e-5 for d in manifest.parity_max_abs_diff.values()), manifest.parity_max_abs_diff
    assert manifest.towers["image"].dim == manifest.towers["text"].dim == 512
    assert manifest.towers["image"].preprocess.size == (224, 224)

    model = load_clip(ClipExportConfig(architecture="ViT-B-32")).model
    cfg = manifest.towers["text"].tokenizer
    feeds = TextTokenizer(out / cfg.file, cfg).encode(TEXTS)
    assert feeds["input_ids"].shape == (len(TEXTS), 77)  # the long caption fills the context
    short = TextTokenizer(out / cfg.file, cfg).encode(TEXTS[:3])
    assert short["input_ids"].shape[1] < 20
    np.testing.assert_allclose(run(out / "text.onnx", short), torch_text(model, TEXTS[:3]), atol=1e-5)
