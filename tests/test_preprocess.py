"""indexers.preprocess replays open_clip's and torchvision's transforms with PIL + numpy.

The references run here are the transforms themselves (open_clip `image_transform`, torchvision
`Resize`/`CenterCrop`/`ToTensor`/`Normalize` and the weights' `ImageClassification`), on images of
awkward sizes and in every PIL mode a user is likely to hand over. Measured: identical to the
last bit (max abs diff 0.0) on all of them; the tolerance below is the contract, not the result.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from functools import cache

import numpy as np
import pytest
from PIL import Image

from indexers.images import load_image
from indexers.manifest import ImagePreprocess
from indexers.preprocess import (
    MAX_RESIZED_PIXELS,
    ImagePreprocessor,
    center_crop_or_pad,
    keep_ratio_size,
    normalisation_table,
    shortest_edge_size,
)
from mmsearch.errors import ConfigError, ImageDecodeError

TOLERANCE = 1e-5
SIZES = [(1, 1), (7, 300), (300, 7), (224, 224), (640, 480), (333, 999)]  # (width, height)
MODES = ["RGB", "RGBA", "L", "LA", "P", "P+transparency", "CMYK", "I;16", "I", "1", "EXIF-rotated"]
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Gradients plus noise: smooth areas and edges, so resampling filters show their differences."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), (xx + yy) * 7 % 256], -1)
    return np.clip(base + rng.integers(0, 60, (height, width, 3)), 0, 255).astype(np.uint8)


@cache
def make_image(width: int, height: int, mode: str, seed: int = 0) -> Image.Image:
    """A test image in `mode` (cached: the preprocessor never modifies its input, a test checks that)."""
    rng = np.random.default_rng(seed + 1)
    rgb = photo(width, height, seed)
    image = Image.fromarray(rgb, "RGB")
    alpha = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8), "L")
    if mode == "RGBA":
        image.putalpha(alpha)
        return image
    if mode == "LA":
        gray = image.convert("L")
        gray.putalpha(alpha)
        return gray
    if mode == "P":
        return image.quantize(64, method=Image.Quantize.FASTOCTREE)
    if mode == "P+transparency":
        palette = image.quantize(64, method=Image.Quantize.FASTOCTREE)
        palette.info["transparency"] = 3
        return palette
    if mode == "I;16":
        wide = rgb[..., 0].astype(np.uint16) * 257 + rng.integers(0, 200, (height, width)).astype(np.uint16)
        return Image.fromarray(wide)
    if mode == "I":
        return Image.fromarray(rgb[..., 1].astype(np.int32) * 300 - 5000)
    if mode == "EXIF-rotated":
        exif = Image.Exif()
        exif[0x0112] = 6
        buf = io.BytesIO()
        image.save(buf, "JPEG", exif=exif.tobytes(), quality=90)
        return load_image(buf.getvalue())
    return image.convert(mode)


# --- references ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_refs() -> Iterator[dict[str, tuple[ImagePreprocess, Callable[[Image.Image], np.ndarray]]]]:
    """Each config under test with the transform it must replay."""
    torch = pytest.importorskip("torch", reason="reference transforms need torch: pip install 'mmsearch[export]'")
    try:
        from indexers.export.torch_compat import import_torchvision

        tv = import_torchvision()
        import open_clip
        from open_clip.transform import PreprocessCfg, merge_preprocess_dict
    except ImportError as e:
        pytest.skip(f"torchvision/open_clip not importable: {e}")
    transforms = tv.transforms

    def as_numpy(transform: Callable[[Image.Image], object]) -> Callable[[Image.Image], np.ndarray]:
        return lambda image: transform(image).numpy()  # type: ignore[attr-defined]

    refs = {}
    model_cfg = open_clip.get_model_config("ViT-B-32")
    vit = merge_preprocess_dict(
        PreprocessCfg(size=model_cfg["vision_cfg"]["image_size"]), model_cfg.get("preprocess_cfg", {})
    )
    refs["clip-vit-b-32"] = (
        ImagePreprocess(
            size=(vit["size"],) * 2,
            resize_size=vit["size"],
            resize_mode=vit["resize_mode"],
            interpolation=vit["interpolation"],
            mean=vit["mean"],
            std=vit["std"],
        ),
        as_numpy(
            open_clip.image_transform(
                vit["size"],
                is_train=False,
                mean=vit["mean"],
                std=vit["std"],
                resize_mode=vit["resize_mode"],
                interpolation=vit["interpolation"],
            )
        ),
    )
    refs["clip-squash-bilinear"] = (
        ImagePreprocess(
            size=(224, 224),
            resize_size=224,
            resize_mode="squash",
            interpolation="bilinear",
            mean=OPENAI_MEAN,
            std=OPENAI_STD,
        ),
        as_numpy(open_clip.image_transform(224, is_train=False, resize_mode="squash", interpolation="bilinear")),
    )
    refs["clip-longest-fill"] = (
        ImagePreprocess(
            size=(224, 224),
            resize_size=224,
            resize_mode="longest",
            interpolation="bicubic",
            mean=OPENAI_MEAN,
            std=OPENAI_STD,
            fill_color=128,
        ),
        as_numpy(open_clip.image_transform(224, is_train=False, resize_mode="longest", fill_color=128)),
    )
    refs["clip-nonsquare-shortest"] = (
        ImagePreprocess(
            size=(192, 256),
            resize_size=192,
            resize_mode="shortest",
            interpolation="bicubic",
            mean=OPENAI_MEAN,
            std=OPENAI_STD,
        ),
        as_numpy(open_clip.image_transform((192, 256), is_train=False)),
    )
    # torchvision ImageNet evaluation: ImageFolder converts to RGB on load, then the transform.
    classic = transforms.Compose(
        [
            transforms.Lambda(lambda image: image.convert("RGB")),
            transforms.Resize(256, interpolation=transforms.InterpolationMode.BILINEAR),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    refs["torchvision-resnet"] = (
        ImagePreprocess(
            size=(224, 224),
            resize_size=256,
            interpolation="bilinear",
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            convert_rgb="first",
        ),
        as_numpy(classic),
    )
    v2 = tv.models.ResNet50_Weights.IMAGENET1K_V2.transforms()  # resize 232, the V2 recipe
    refs["torchvision-resnet50-v2-preset"] = (
        ImagePreprocess(
            size=(224, 224),
            resize_size=232,
            interpolation="bilinear",
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            convert_rgb="first",
        ),
        lambda image: v2(image.convert("RGB")).numpy(),
    )
    # Per-image transforms on tiny tensors: extra intra-op threads only fight over the CPU
    # (40 ms per call with 2 threads on a busy 2-core machine, 1 ms with one).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield refs
    torch.set_num_threads(threads)


REF_NAMES = [
    "clip-vit-b-32",
    "clip-squash-bilinear",
    "clip-longest-fill",
    "clip-nonsquare-shortest",
    "torchvision-resnet",
    "torchvision-resnet50-v2-preset",
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ref", REF_NAMES)
def test_matches_reference_transform(torch_refs, ref: str, mode: str) -> None:
    cfg, reference = torch_refs[ref]
    preprocessor = ImagePreprocessor(cfg)
    for width, height in SIZES:
        image = make_image(width, height, mode)
        expected = reference(image)
        got = preprocessor(image)
        assert got.dtype == np.float32 and got.shape == expected.shape == (3, *cfg.size)
        diff = float(np.abs(got - expected).max())
        assert diff <= TOLERANCE, f"{ref} {mode} {width}x{height}: max abs diff {diff}"


def test_convert_order_matters_for_palette_images(torch_refs) -> None:
    """Resizing a palette image before RGB conversion uses NEAREST: the two orders differ."""
    cfg, reference = torch_refs["torchvision-resnet"]
    image = make_image(640, 480, "P")
    late = ImagePreprocessor(cfg.model_copy(update={"convert_rgb": "after_crop"}))(image)
    assert float(np.abs(late - reference(image)).max()) > 0.1
    assert float(np.abs(ImagePreprocessor(cfg)(image) - reference(image)).max()) <= TOLERANCE


def test_normalisation_table_is_torch_arithmetic(torch_refs) -> None:
    import torch

    table = normalisation_table(IMAGENET_MEAN, IMAGENET_STD)
    values = torch.arange(256, dtype=torch.uint8).repeat(3, 1, 1).to(torch.float32).div(255)
    expected = values.sub(torch.tensor(IMAGENET_MEAN).view(3, 1, 1)).div(torch.tensor(IMAGENET_STD).view(3, 1, 1))
    np.testing.assert_array_equal(table, expected.numpy()[:, 0, :])


# --- known answers, no torch needed -----------------------------------------------------------


def cfg(**kwargs: object) -> ImagePreprocess:
    base: dict[str, object] = {"size": (224, 224), "resize_size": 224, "mean": OPENAI_MEAN, "std": OPENAI_STD}
    return ImagePreprocess(**{**base, **kwargs})


@pytest.mark.parametrize(
    "height,width,size,expected",
    [
        (300, 7, 224, (9600, 224)),
        (7, 300, 224, (224, 9600)),
        (480, 640, 256, (256, 341)),  # 341.33 truncates
        (999, 333, 224, (672, 224)),
        (1, 1, 224, (224, 224)),
        (224, 224, 224, (224, 224)),
    ],
)
def test_shortest_edge_size(height: int, width: int, size: int, expected: tuple[int, int]) -> None:
    assert shortest_edge_size(height, width, size) == expected


@pytest.mark.parametrize(
    "height,width,target,longest,expected",
    [
        (480, 640, (224, 224), 1.0, (168, 224)),
        (300, 7, (224, 224), 1.0, (224, 5)),
        (8, 5, (4, 4), 1.0, (4, 2)),  # 2.5 rounds half to even, as Python's round
        (480, 640, (192, 256), 0.0, (192, 256)),
        (100, 400, (192, 256), 0.0, (192, 768)),
    ],
)
def test_keep_ratio_size(
    height: int, width: int, target: tuple[int, int], longest: float, expected: tuple[int, int]
) -> None:
    assert keep_ratio_size(height, width, target, longest) == expected


def test_center_crop_rounds_half_to_even() -> None:
    row = Image.fromarray(np.arange(5, dtype=np.uint8).reshape(1, 5), "L")
    # offset round((5 - 2) / 2) = round(1.5) = 2
    assert list(np.asarray(center_crop_or_pad(row, (1, 2)))[0]) == [2, 3]


def test_center_pad_puts_the_odd_pixel_right_and_bottom() -> None:
    dot = Image.fromarray(np.full((1, 1), 200, np.uint8), "L")
    padded = np.asarray(center_crop_or_pad(dot, (4, 4), fill=7))
    assert padded.shape == (4, 4)
    assert padded[1, 1] == 200
    assert (padded != 200).sum() == 15 and set(np.unique(padded)) == {7, 200}


def test_batch_equals_single_calls() -> None:
    preprocessor = ImagePreprocessor(cfg())
    images = [make_image(640, 480, "RGB", seed=s) for s in range(3)]
    batch = preprocessor.batch(images)
    assert batch.shape == (3, 3, 224, 224) and batch.dtype == np.float32
    for row, image in enumerate(images):
        np.testing.assert_array_equal(batch[row], preprocessor(image))
    assert not np.array_equal(batch[0], batch[1])


def test_empty_batch() -> None:
    out = ImagePreprocessor(cfg(size=(32, 48))).batch([])
    assert out.shape == (0, 3, 32, 48) and out.dtype == np.float32


def test_known_pixel_values() -> None:
    """A uniform image stays uniform: every value is (v/255 - mean) / std per channel."""
    image = Image.new("RGB", (50, 30), (255, 0, 128))
    out = ImagePreprocessor(cfg(size=(8, 8), resize_size=8))(image)
    expected = (np.array([255, 0, 128], np.float32) / 255 - np.array(OPENAI_MEAN, np.float32)) / np.array(
        OPENAI_STD, np.float32
    )
    np.testing.assert_allclose(out[:, 4, 4], expected, rtol=0, atol=1e-6)
    assert np.ptp(out, axis=(1, 2)).max() == 0


def test_input_image_is_not_modified() -> None:
    image = make_image(300, 200, "P+transparency")
    before = (image.mode, image.size, image.tobytes(), dict(image.info))
    ImagePreprocessor(cfg(convert_rgb="first"))(image)
    ImagePreprocessor(cfg(resize_mode="longest", fill_color=9))(image)
    assert (image.mode, image.size, image.tobytes(), dict(image.info)) == before


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", [np.zeros((224, 224, 3), np.uint8), b"\xff\xd8", "photo.jpg"], ids=["ndarray", "bytes", "path"]
)
def test_non_pil_input(bad: object) -> None:
    with pytest.raises(ImageDecodeError, match=f"got {type(bad).__name__}.*load_image"):
        ImagePreprocessor(cfg())(bad)  # type: ignore[arg-type]


def test_extreme_aspect_ratio_is_refused() -> None:
    strip = Image.new("RGB", (1, 20000))
    assert MAX_RESIZED_PIXELS < 224 * 224 * 20000
    with pytest.raises(ImageDecodeError, match=r"1x20000.*224x4480000"):
        ImagePreprocessor(cfg())(strip)


def test_strip_that_resizes_to_nothing() -> None:
    strip = Image.new("RGB", (1000, 1))
    with pytest.raises(ImageDecodeError, match=r"1000x1.*224x0"):
        ImagePreprocessor(cfg(resize_mode="longest"))(strip)


def test_mode_pil_cannot_convert() -> None:
    odd = Image.new("La", (40, 30))
    with pytest.raises(ImageDecodeError, match="mode 'La'"):
        ImagePreprocessor(cfg())(odd)


@pytest.mark.parametrize(
    "update,needle",
    [
        ({"std": (0.2, 0.0, 0.2)}, "zero"),
        ({"size": (0, 224)}, "positive"),
        ({"resize_size": 0}, "positive"),
    ],
)
def test_bad_config(update: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        ImagePreprocessor(cfg(**update))
