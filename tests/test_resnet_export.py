"""The `resnet` family: torchvision CNNs exported to ONNX, checked against PyTorch end to end."""

from __future__ import annotations

import io
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

torch = pytest.importorskip("torch", reason="export tests need torch: pip install 'mmsearch[export]'")

from indexers.export import export_model  # noqa: E402
from indexers.export.resnet import (  # noqa: E402
    ARCHITECTURES,
    ImageEmbedder,
    build_model,
    sample_images,
)
from indexers.export.torch_compat import import_torchvision  # noqa: E402
from indexers.images import load_image  # noqa: E402
from indexers.manifest import ImagePreprocess, Manifest  # noqa: E402
from indexers.onnx_session import OnnxSession  # noqa: E402
from indexers.preprocess import ImagePreprocessor  # noqa: E402
from mmsearch.errors import ConfigError, ExportError, UnknownNameError, WeightsError  # noqa: E402
from mmsearch.files import sha256_file  # noqa: E402

TOLERANCE = 1e-4


def torch_embedder(arch: str, weights: str = "none") -> tuple[ImageEmbedder, object]:
    spec = ARCHITECTURES.get(arch)
    model, _, transform = build_model(spec, arch, weights)
    return ImageEmbedder(spec.strip(model)).eval(), transform


def torch_embed(embedder: ImageEmbedder, transform: object, images: list[Image.Image]) -> np.ndarray:
    """The PyTorch side: ImageFolder's RGB conversion, torchvision's transform, the eager model."""
    pixels = torch.stack([transform(image.convert("RGB")) for image in images])  # type: ignore[operator]
    with torch.no_grad():
        return embedder(pixels).numpy()


def runtime_embed(folder: Path, sources: list[object], precision: str = "fp32") -> np.ndarray:
    """The query path: load_image, PIL + numpy preprocessing, onnxruntime. No torch."""
    manifest = Manifest.load(folder)
    tower = manifest.towers["image"]
    assert tower.preprocess is not None
    pixels = ImagePreprocessor(tower.preprocess).batch([load_image(s) for s in sources])  # type: ignore[arg-type]
    return OnnxSession(folder / tower.graph(precision).file, device="cpu").run({"pixel_values": pixels})


@pytest.fixture(scope="module")
def image_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Photo-like images saved the way users have them: JPEG, PNG with alpha, palette, grayscale."""
    folder = tmp_path_factory.mktemp("resnet-images")
    images = sample_images(5, seed=11)
    files = []
    for i, (image, (mode, fmt)) in enumerate(
        zip(images, [("RGB", "JPEG"), ("RGBA", "PNG"), ("P", "PNG"), ("L", "PNG"), ("RGB", "PNG")], strict=True)
    ):
        path = folder / f"{i}.{fmt.lower()}"
        converted = image.convert(mode) if mode != "RGBA" else image.copy()
        if mode == "RGBA":
            converted.putalpha(200)
        converted.save(path, fmt)
        files.append(path)
    return files


# --- the manifest -------------------------------------------------------------------------------


def test_manifest_fields_and_hashes(resnet_dir: Path) -> None:
    manifest = Manifest.load(resnet_dir, verify=True)
    assert (manifest.family, manifest.architecture, manifest.name) == ("resnet", "resnet18", "resnet18")
    assert manifest.weights.kind == "none" and manifest.quantization is None
    assert list(manifest.towers) == ["image"]
    tower = manifest.towers["image"]
    assert (tower.modality, tower.file, tower.dim, tower.output) == ("image", "image.onnx", 512, "image_embeds")
    assert tower.normalized and tower.distance == "cosine" and tower.tokenizer is None
    assert tower.sha256 == sha256_file(resnet_dir / "image.onnx")
    assert tower.preprocess == ImagePreprocess(
        size=(224, 224),
        resize_size=256,
        resize_mode="shortest",
        interpolation="bilinear",
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        convert_rgb="first",
    )
    assert manifest.parity_tolerance == TOLERANCE
    assert 0 <= manifest.parity_max_abs_diff["image"] <= TOLERANCE
    assert {"torch", "torchvision", "onnxruntime"} <= set(manifest.toolchain)
    assert tower.int8 is None
    assert sorted(p.name for p in resnet_dir.iterdir()) == [".verified.json", "image.onnx", "manifest.json"]


def test_graph_inputs_and_outputs(resnet_dir: Path) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(resnet_dir / "image.onnx"), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.name == "pixel_values" and inp.type == "tensor(float)"
    assert isinstance(inp.shape[0], str) and inp.shape[1:] == [3, 224, 224]
    assert out.name == "image_embeds" and out.shape[1] == 512


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_dynamic_batch(resnet_dir: Path, batch: int) -> None:
    manifest = Manifest.load(resnet_dir)
    preprocessor = ImagePreprocessor(manifest.towers["image"].preprocess)  # type: ignore[arg-type]
    pixels = preprocessor.batch(sample_images(batch, seed=batch))
    session = OnnxSession(resnet_dir / "image.onnx", device="cpu")
    out = session.run({"pixel_values": pixels})
    assert out.shape == (batch, 512) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    for row in range(batch):  # a row does not depend on its neighbours in the batch
        single = session.run({"pixel_values": pixels[row : row + 1]})
        np.testing.assert_allclose(single[0], out[row], atol=1e-5, rtol=0)


def test_runtime_embeddings_match_torch(resnet_dir: Path, image_files: list[Path]) -> None:
    got = runtime_embed(resnet_dir, [str(p) for p in image_files])
    embedder, transform = torch_embedder("resnet18")
    images = [ImageOps.exif_transpose(Image.open(p)) for p in image_files]
    expected = torch_embed(embedder, transform, images)
    diff = float(np.abs(got - expected).max())
    assert diff <= TOLERANCE, diff
    assert np.abs(got[0] - got[1]).max() > 1e-3  # different images, different vectors


def test_bytes_and_paths_embed_alike(resnet_dir: Path, image_files: list[Path]) -> None:
    from_paths = runtime_embed(resnet_dir, image_files[:2])
    from_bytes = runtime_embed(resnet_dir, [p.read_bytes() for p in image_files[:2]])
    np.testing.assert_array_equal(from_paths, from_bytes)


# --- weights from a file -------------------------------------------------------------------------


def test_weights_from_a_wrapped_headless_state_dict(tmp_path: Path, resnet_dir: Path, image_files: list[Path]) -> None:
    """A training checkpoint: {"state_dict": ...}, DataParallel's "module." prefix, no fc."""
    tv = import_torchvision()
    torch.manual_seed(123)
    trained = tv.models.resnet18()
    state = {f"module.{k}": v for k, v in trained.state_dict().items() if not k.startswith("fc.")}
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": state, "epoch": 3}, path)

    manifest = export_model("resnet", tmp_path / "from-file", architecture="resnet18", weights=str(path))
    assert manifest.weights.kind == "file" and manifest.weights.sha256 == sha256_file(path)
    got = runtime_embed(tmp_path / "from-file", image_files)
    embedder, transform = torch_embedder("resnet18", str(path))
    expected = torch_embed(embedder, transform, [Image.open(p) for p in image_files])
    assert float(np.abs(got - expected).max()) <= TOLERANCE
    assert np.abs(got - runtime_embed(resnet_dir, image_files)).max() > 1e-2  # really other weights


# --- errors ----------------------------------------------------------------------------------------


def no_leftovers(folder: Path) -> None:
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def test_unknown_architecture_lists_the_known(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError) as info:
        export_model("resnet", tmp_path / "m", architecture="resnet999", weights="none")
    message = str(info.value)
    assert "'resnet999'" in message
    for known in ("resnet18", "resnet50", "resnet152", "vgg16", "mobilenet_v3_small", "mobilenet_v3_large"):
        assert known in message
    assert not (tmp_path / "m").exists()


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="colour"):
        export_model("resnet", tmp_path / "m", architecture="resnet18", colour="red")


def test_state_dict_of_another_architecture(tmp_path: Path) -> None:
    tv = import_torchvision()
    path = tmp_path / "mobilenet.pth"
    torch.save(tv.models.mobilenet_v3_small().state_dict(), path)
    with pytest.raises(WeightsError, match=r"mobilenet\.pth.*do not fit resnet18.*another architecture"):
        export_model("resnet", tmp_path / "m", architecture="resnet18", weights=str(path))
    no_leftovers(tmp_path)


def test_state_dict_with_wrong_shapes(tmp_path: Path) -> None:
    tv = import_torchvision()
    path = tmp_path / "r18.pt"
    torch.save(tv.models.resnet18().state_dict(), path)
    with pytest.raises(WeightsError, match=r"r18\.pt.*do not fit resnet50"):
        export_model("resnet", tmp_path / "m", architecture="resnet50", weights=str(path))


def test_garbage_weights_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(WeightsError, match=r"weights\.pth.*not a PyTorch state_dict"):
        export_model("resnet", tmp_path / "m", architecture="resnet18", weights=str(path))


def test_pickled_object_that_is_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(WeightsError, match=r"list\.pt.*holds a list"):
        export_model("resnet", tmp_path / "m", architecture="resnet18", weights=str(path))


def test_missing_weights_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "w.pth"
    with pytest.raises(WeightsError, match=r"w\.pth.*does not exist"):
        export_model("resnet", tmp_path / "m", architecture="resnet18", weights=str(path))


def test_unknown_weights_tag_lists_the_known(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match=r"'IMAGENET9K'.*DEFAULT.*IMAGENET1K_V1"):
        export_model("resnet", tmp_path / "m", architecture="resnet18", weights="IMAGENET9K")


def test_unfetchable_tag_offline_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import_torchvision()
    import torchvision.models._api as api

    def offline(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError) as info:
        export_model("resnet", tmp_path / "m", architecture="resnet18", weights="DEFAULT")
    message = str(info.value)
    assert "ResNet18_Weights.IMAGENET1K_V1" in message and "resnet18-" in message
    assert "Offline?" in message and "checkpoints" in message
    no_leftovers(tmp_path)


def test_existing_out_dir_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="exists"):
        export_model("resnet", out, architecture="resnet18", weights="none")
    assert (out / "keep.txt").read_text() == "mine"
    no_leftovers(tmp_path)


def test_int8_needs_calibration(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="calibration.*dynamic int8 makes CNNs slower"):
        export_model("resnet", tmp_path / "m", architecture="resnet18", quantize="int8")


def test_calibration_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"calibration path .*nope.* does not exist"):
        export_model("resnet", tmp_path / "m", architecture="resnet18", quantize="int8", calibration=tmp_path / "nope")


def test_calibration_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "cal").mkdir()
    (tmp_path / "cal" / "readme.txt").write_text("no images here")
    with pytest.raises(ConfigError, match="no images"):
        export_model("resnet", tmp_path / "m", architecture="resnet18", quantize="int8", calibration=tmp_path / "cal")


# --- full-size architectures and int8 (slow) ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "arch,dim", [("resnet50", 2048), ("mobilenet_v3_small", 576), ("mobilenet_v3_large", 960), ("vgg16", 4096)]
)
def test_full_size_export_parity(tmp_path: Path, image_files: list[Path], arch: str, dim: int) -> None:
    manifest = export_model("resnet", tmp_path / arch, architecture=arch, weights="none")
    assert manifest.towers["image"].dim == dim
    assert manifest.parity_max_abs_diff["image"] <= TOLERANCE
    got = runtime_embed(tmp_path / arch, image_files)
    embedder, transform = torch_embedder(arch)
    expected = torch_embed(embedder, transform, [Image.open(p) for p in image_files])
    assert got.shape == (len(image_files), dim)
    assert float(np.abs(got - expected).max()) <= TOLERANCE


@pytest.mark.slow
def test_static_int8_export(tmp_path: Path, image_files: list[Path]) -> None:
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for i, image in enumerate(sample_images(10, seed=5)):
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=90)
        (calibration / f"{i}.jpg").write_bytes(buf.getvalue())
    out = tmp_path / "int8"
    manifest = export_model(
        "resnet", out, architecture="resnet18", weights="none", quantize="int8", calibration=calibration
    )
    q = manifest.quantization
    assert q is not None and q.method == "static-qdq-int8"
    assert 0.99 <= q.cosine_to_fp32_min <= q.cosine_to_fp32_mean <= 1.0
    tower = manifest.towers["image"]
    assert tower.int8 is not None and tower.int8.method == "static-qdq-int8"
    assert (tower.file, tower.int8.file) == ("image.onnx", "image.int8.onnx")
    assert sorted(p.name for p in out.iterdir()) == [".verified.json", "image.int8.onnx", "image.onnx", "manifest.json"]
    assert tower.int8.sha256 == sha256_file(out / "image.int8.onnx")
    Manifest.load(out, verify=True)
    int8 = runtime_embed(out, image_files, "int8")
    embedder, transform = torch_embedder("resnet18")
    fp32 = torch_embed(embedder, transform, [Image.open(p) for p in image_files])
    assert np.min(np.sum(int8 * fp32, axis=1)) > 0.98  # unit vectors: the dot is the cosine
    # The fp32 graph stays beside it, as exact as an fp32 export's.
    assert float(np.abs(runtime_embed(out, image_files, "fp32") - fp32).max()) <= TOLERANCE
