"""The `resnet` family: torchvision CNNs (ResNet, VGG16, MobileNet-V3) as image feature extractors.

The classifier is cut off and the graph returns the pooled features, L2-normalised, as
`image_embeds`. Preprocessing is torchvision's ImageNet evaluation transform, recorded in the
manifest so the run time replays it with PIL + numpy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from indexers.export.common import Exported, ExportOptions, Int8Plan, TowerExport, export_onnx, graph_file, run_export
from indexers.export.families import family
from indexers.export.torch_compat import import_torchvision
from indexers.images import load_image
from indexers.manifest import ImagePreprocess, Manifest, TowerInfo, WeightsSource
from indexers.preprocess import ImagePreprocessor
from indexers.registry import Registry
from mmsearch.errors import ConfigError, ExportError, UnknownNameError, WeightsError
from mmsearch.files import sha256_file

log = logging.getLogger(__name__)

OUTPUT = "image_embeds"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
# onnxruntime's MinMax calibration keeps every intermediate activation of every calibration batch
# in memory until the end (~40 MB per image for ResNet-50); 32 images bound that to ~1.3 GB and
# already pin the activation ranges of a CNN's ReLU outputs well.
MAX_CALIBRATION_IMAGES = 32
CALIBRATION_BATCH = 8
# torchvision's classification evaluation transform, used when the weights carry none of their own.
DEFAULT_RESIZE = 256
DEFAULT_CROP = 224


def _strip_fc(model: torch.nn.Module) -> torch.nn.Module:
    model.fc = torch.nn.Identity()
    return model


def _strip_vgg(model: torch.nn.Module) -> torch.nn.Module:
    # fc7 (the second 4096-d layer, after its ReLU): the classic VGG image descriptor, the one
    # retrieval studies compare; pooled conv5 features (512-d) lose most of VGG's advantage.
    model.classifier = model.classifier[:5]  # type: ignore[index]
    return model


def _strip_mobilenet(model: torch.nn.Module) -> torch.nn.Module:
    # The globally pooled last conv stage (576 / 960-d). The classifier's first Linear+Hardswish
    # (1024 / 1280-d) is part of the ImageNet head, as in Keras' include_top=False.
    model.classifier = torch.nn.Identity()
    return model


@dataclass(frozen=True)
class CnnSpec:
    """One exportable torchvision architecture.

    Attributes:
        builder: the `torchvision.models` builder function name.
        dim: size of the pooled features the graph returns.
        weights_enum: the `torchvision.models` weights enum (tags like DEFAULT, IMAGENET1K_V2).
        strip: cuts the classifier off the built model (in place) and returns it.
        head_keys: state_dict key prefixes of the removed layers (may be absent from a file).
    """

    builder: str
    dim: int
    weights_enum: str
    strip: Callable[[torch.nn.Module], torch.nn.Module]
    head_keys: tuple[str, ...]


ARCHITECTURES: Registry[CnnSpec] = Registry("resnet-family architecture")
for _name, _dim, _enum in (
    ("resnet18", 512, "ResNet18_Weights"),
    ("resnet34", 512, "ResNet34_Weights"),
    ("resnet50", 2048, "ResNet50_Weights"),
    ("resnet101", 2048, "ResNet101_Weights"),
    ("resnet152", 2048, "ResNet152_Weights"),
):
    ARCHITECTURES.add(_name, CnnSpec(_name, _dim, _enum, _strip_fc, ("fc.",)))
ARCHITECTURES.add("vgg16", CnnSpec("vgg16", 4096, "VGG16_Weights", _strip_vgg, ("classifier.6.",)))
ARCHITECTURES.add(
    "mobilenet_v3_small",
    CnnSpec("mobilenet_v3_small", 576, "MobileNet_V3_Small_Weights", _strip_mobilenet, ("classifier.",)),
)
ARCHITECTURES.add(
    "mobilenet_v3_large",
    CnnSpec("mobilenet_v3_large", 960, "MobileNet_V3_Large_Weights", _strip_mobilenet, ("classifier.",)),
)


class ResnetExportConfig(ExportOptions):
    """Options of `export_model("resnet", ...)`.

    Attributes:
        architecture: resnet18/34/50/101/152, vgg16, mobilenet_v3_small, mobilenet_v3_large.
        weights: `none` (random, seeded), a torchvision weights tag (`DEFAULT`, `IMAGENET1K_V2`...;
            downloaded once into torch's hub cache), or a path to a state_dict file (.pt/.pth/.safetensors).
        opset: ONNX opset.
        tolerance: max abs difference allowed between ONNX and PyTorch embeddings.
        quantize: `int8` also writes a static QDQ int8 graph (needs `calibration`).
        calibration: images, or folders of images, whose activations set the int8 ranges.
        overwrite: replace an existing model folder.
    """

    architecture: str = "resnet50"
    weights: str = "none"
    calibration: list[Path] | Path | None = None


class ImageEmbedder(torch.nn.Module):
    """A headless CNN whose pooled features come out L2-normalised."""

    def __init__(self, backbone: torch.nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.backbone(pixel_values), dim=-1)


# ---------------------------------------------------------------------------------------------
# Weights


def _is_path(weights: str) -> bool:
    return (
        "/" in weights
        or "\\" in weights
        or weights.lower().endswith((".pt", ".pth", ".bin", ".ckpt", ".safetensors"))
        or Path(weights).expanduser().exists()
    )


def _weights_tag(tv: Any, spec: CnnSpec, arch: str, tag: str) -> Any:
    enum = getattr(tv.models, spec.weights_enum)
    short = tag.split(".", 1)[1] if tag.startswith(f"{spec.weights_enum}.") else tag
    try:
        return enum[short.upper()]  # torchvision's tags are all upper case
    except KeyError:
        known = [*enum.__members__, "none", "<path to a state_dict file>"]
        raise UnknownNameError(f"{arch} weights tag", tag, known) from None


def _fetch_state_dict(weights: Any) -> Mapping[str, torch.Tensor]:
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as e:  # URLError, HTTPError, hash mismatch, a half-written cache file...
        hub = Path(torch.hub.get_dir()) / "checkpoints"
        raise WeightsError(
            f"cannot fetch torchvision weights {weights} from {weights.url}: {e}. Offline? Download that "
            f"file on a connected machine into {hub}/ (or set TORCH_HOME), or save the state_dict and "
            "pass its path as weights"
        ) from e


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path))
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip, safetensors header errors all mean "not a state_dict"
        raise WeightsError(
            f"weights file {str(path)!r} is not a PyTorch state_dict ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); save one with torch.save(model.state_dict(), path)"
        ) from e
    # Training checkpoints often wrap the weights: {"state_dict": ...} or {"model": ...}.
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if (
        not isinstance(obj, Mapping)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ):
        raise WeightsError(
            f"weights file {str(path)!r} holds a {type(obj).__name__}, not a state_dict of tensors; "
            "save one with torch.save(model.state_dict(), path)"
        )
    state = dict(obj)
    if all(k.startswith("module.") for k in state):  # saved from DataParallel / DDP
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _load_into(
    model: torch.nn.Module, state: Mapping[str, torch.Tensor], spec: CnnSpec, arch: str, source: str
) -> None:
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches are raised even with strict=False
        first = [line.strip() for line in str(e).splitlines() if "size mismatch" in line][:2]
        raise WeightsError(
            f"weights {source} do not fit {arch}: {'; '.join(first) or e}; is it a state_dict of another architecture?"
        ) from e
    missing = [k for k in result.missing_keys if not k.startswith(spec.head_keys)]
    if missing or result.unexpected_keys:
        raise WeightsError(
            f"weights {source} do not fit {arch}: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[:3]}); "
            "is it a state_dict of another architecture?"
        )


def build_model(spec: CnnSpec, arch: str, weights: str) -> tuple[torch.nn.Module, WeightsSource, Any]:
    """Build the full torchvision model with its weights.

    Returns:
        (model in eval mode, the manifest's WeightsSource, torchvision's eval transform for it).

    Raises:
        UnknownNameError: a weights tag the architecture does not have.
        WeightsError: a missing, unreadable or mismatched file; a tag that cannot be downloaded.
    """
    tv = import_torchvision()
    from torchvision.transforms._presets import ImageClassification

    builder = tv.models.get_model_builder(spec.builder)
    transform = ImageClassification(crop_size=DEFAULT_CROP, resize_size=DEFAULT_RESIZE)
    if weights == "none":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # a reproducible random model: same graph hash on every export
            model = builder(weights=None)
        source = WeightsSource(kind="none")
    elif _is_path(weights):
        path = Path(weights).expanduser()
        state = _read_state_dict(path)
        model = builder(weights=None)
        _load_into(model, state, spec, arch, f"file {str(path)!r}")
        source = WeightsSource(kind="file", name=str(path), sha256=sha256_file(path))
    else:
        tag = _weights_tag(tv, spec, arch, weights)
        _fetch_state_dict(tag)  # downloads into the hub cache, or explains how to do it offline
        try:
            model = builder(weights=tag, progress=False)
        except Exception as e:
            raise WeightsError(f"cannot load torchvision weights {tag} into {arch}: {e}") from e
        transform = tag.transforms()
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(tag.url).name
        source = WeightsSource(
            kind="pretrained", name=str(tag), sha256=sha256_file(cached) if cached.is_file() else None
        )
    bad = [n for n, p in model.state_dict().items() if p.is_floating_point() and not torch.isfinite(p).all()]
    if bad:
        raise WeightsError(
            f"weights {weights!r} for {arch} hold NaN or inf in {bad[:3]}; for VGG, the "
            "IMAGENET1K_FEATURES tag has no classifier weights: use IMAGENET1K_V1"
        )
    return model.eval(), source, transform


# ---------------------------------------------------------------------------------------------
# Preprocessing, sample images, calibration


def preprocess_config(transform: Any) -> ImagePreprocess:
    """The manifest record of a torchvision `ImageClassification` eval transform.

    ImageFolder's loader converts to RGB before the transform, hence `convert_rgb="first"`.
    """
    interpolation = transform.interpolation.value
    if interpolation not in ("bilinear", "bicubic", "nearest", "lanczos"):
        raise ExportError(f"torchvision transform interpolation {interpolation!r} cannot be replayed")
    crop = transform.crop_size[0]
    return ImagePreprocess(
        size=(crop, crop),
        resize_size=transform.resize_size[0],
        resize_mode="shortest",
        interpolation=interpolation,
        mean=tuple(transform.mean),
        std=tuple(transform.std),
        convert_rgb="first",
    )


def sample_images(count: int = 6, seed: int = 0) -> list[Image.Image]:
    """Deterministic photo-like test images: gradients, shapes, lines and noise, of several sizes.

    Sizes cover landscape, portrait, square, smaller than the crop and an extreme aspect ratio.
    """
    sizes = [(640, 480), (333, 999), (224, 224), (1024, 200), (150, 120), (500, 375)]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        width, height = sizes[i % len(sizes)]
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        base = np.stack([xx / width, yy / height, (xx + yy) / (width + height)], -1)
        tint = rng.random(3).astype(np.float32)
        pixels = (255 * (0.6 * base * tint + 0.4 * rng.random((height, width, 3)) ** 4)).astype(np.uint8)
        image = Image.fromarray(pixels, "RGB")
        draw = ImageDraw.Draw(image)
        for _ in range(8):
            x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
            x1, y1 = x0 + int(rng.integers(5, width // 2 + 6)), y0 + int(rng.integers(5, height // 2 + 6))
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            shape = int(rng.integers(3))
            if shape == 0:
                draw.ellipse((x0, y0, x1, y1), fill=color)
            elif shape == 1:
                draw.rectangle((x0, y0, x1, y1), fill=color)
            else:
                draw.line((x0, y0, x1, y1), fill=color, width=int(rng.integers(1, 8)))
        out.append(image)
    return out


def calibration_files(calibration: Sequence[Path] | Path | None) -> list[Path]:
    """Image files named by `calibration` (files, or folders searched for image suffixes).

    Raises:
        ConfigError: nothing given, a path that does not exist, or no images found.
    """
    if calibration is None:
        raise ConfigError(
            "quantize='int8' needs calibration images: static int8 quantization of a CNN sets each "
            "activation's range from real inputs (dynamic int8 makes CNNs slower, not faster); "
            "pass calibration=<folder of a few dozen representative images>"
        )
    paths = [calibration] if isinstance(calibration, Path) else list(calibration)
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"calibration path {str(path)!r} does not exist")
    if not files:
        raise ConfigError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in calibration {[str(p) for p in paths]}")
    if len(files) > MAX_CALIBRATION_IMAGES:
        step = len(files) / MAX_CALIBRATION_IMAGES
        files = [files[int(i * step)] for i in range(MAX_CALIBRATION_IMAGES)]
    return files


def calibration_feeds(files: Sequence[Path], preprocess: ImagePreprocess) -> list[dict[str, np.ndarray]]:
    """Calibration batches built with the run-time loader and preprocessor, as inference will see them."""
    preprocessor = ImagePreprocessor(preprocess)
    feeds = []
    for start in range(0, len(files), CALIBRATION_BATCH):
        images = [load_image(p) for p in files[start : start + CALIBRATION_BATCH]]
        feeds.append({"pixel_values": preprocessor.batch(images)})
    return feeds


# ---------------------------------------------------------------------------------------------
# Export


def reference_pixels(transform: Any, preprocess: ImagePreprocess, images: Sequence[Image.Image]) -> torch.Tensor:
    """torchvision's own transform of `images` after ImageFolder's RGB conversion, checked against the replay.

    Raises:
        ExportError: the run-time PIL + numpy preprocessing differs from torchvision's.
    """
    pixels = torch.stack([transform(image.convert("RGB")) for image in images])
    replayed = ImagePreprocessor(preprocess).batch(images)
    replay_diff = float(np.abs(replayed - pixels.numpy()).max())
    if replay_diff > 1e-5:
        raise ExportError(f"run-time preprocessing differs from torchvision's transform by {replay_diff:.3g}")
    return pixels


def build(config: ResnetExportConfig, spec: CnnSpec, calibration: Sequence[Path], stage: Path) -> Exported:
    """The resnet family's steps of the export skeleton: model, preprocessing check, the fp32 graph."""
    arch = config.architecture
    model, source, transform = build_model(spec, arch, config.weights)
    embedder = ImageEmbedder(spec.strip(model)).eval()
    preprocess = preprocess_config(transform)
    pixels = reference_pixels(transform, preprocess, sample_images())
    with torch.no_grad():
        expected = embedder(pixels).numpy()
    if expected.shape[1] != spec.dim:
        raise ExportError(f"{arch} gives {expected.shape[1]}-d features, the registry says {spec.dim}")
    export_onnx(
        embedder,
        (pixels[:2],),
        stage / graph_file("image"),
        input_names=["pixel_values"],
        output_name=OUTPUT,
        dynamic_shapes={"pixel_values": {0: torch.export.Dim("batch", min=1, max=4096)}},
        opset=config.opset,
    )
    tower = TowerExport(
        key="image",
        info=TowerInfo(modality="image", dim=spec.dim, output=OUTPUT, preprocess=preprocess),
        feeds={"pixel_values": pixels.numpy()},
        reference=expected,
        # Static QDQ: dynamic int8 makes a CNN slower (see indexers.export.quantize).
        int8=Int8Plan("static-qdq-int8", calibration=lambda: calibration_feeds(calibration, preprocess)),
    )
    return Exported(architecture=arch, weights=source, towers=(tower,), toolchain=("torchvision", "pillow"))


@family(
    "resnet",
    description="torchvision CNNs (ResNet-18..152, VGG16, MobileNet-V3): pooled image features",
    modalities=("image",),
    config=ResnetExportConfig,
)
def export_resnet(config: ResnetExportConfig, out_dir: Path) -> Manifest:
    """Export a torchvision CNN into `out_dir` and check the ONNX graph against PyTorch.

    Writes image.onnx (and with `quantize="int8"` image.int8.onnx beside it, static QDQ
    calibrated on `config.calibration`) and manifest.json.

    Args:
        config: the validated export options.
        out_dir: the model folder to write (replaced atomically on success).

    Returns:
        The manifest written into `out_dir`.

    Raises:
        UnknownNameError: unknown architecture or weights tag.
        ConfigError: int8 without calibration images.
        WeightsError: weights that cannot be read, fetched or loaded into the architecture.
        ExportError: `out_dir` exists (without overwrite), or the exporter failed.
        ParityError: ONNX and PyTorch embeddings differ beyond `tolerance`.
    """
    spec = ARCHITECTURES.get(config.architecture)
    files = calibration_files(config.calibration) if config.quantize == "int8" else []
    return run_export("resnet", config, out_dir, lambda stage: build(config, spec, files, stage))
