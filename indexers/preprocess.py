"""Run-time image preprocessing with PIL + numpy that replays the model's torchvision transform.

Exactness comes from construction, not approximation: every step that touches pixels is the same
PIL call torchvision makes on a PIL image (`Image.resize`, `ImageOps.expand`, `Image.crop`,
`Image.convert`), with sizes computed by the same integer and rounding rules, in the same order.
The last step, ToTensor + Normalize, is one table lookup whose 256 entries per channel are computed
with the same float32 operations torch uses, so the output matches bit for bit.

Replayed transforms:
- open_clip `image_transform(..., is_train=False)`: `shortest` = Resize(int) + CenterCrop,
  `squash` = Resize((h, w)), `longest` = ResizeKeepRatio(longest=1) + CenterCropOrPad(fill),
  then convert('RGB'), ToTensor, Normalize.
- torchvision ImageNet evaluation (ResNet, VGG, MobileNet): ImageFolder's convert('RGB') on load,
  then Resize(resize_size), CenterCrop(size), ToTensor, Normalize (`convert_rgb="first"`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps

from indexers.manifest import ImagePreprocess
from mmsearch.errors import ConfigError, ImageDecodeError

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
# The resized image before the centre crop can be far larger than the model input when the
# aspect ratio is extreme (a 1x300 strip becomes 224x67,200 under `shortest`). Past 16 M pixels
# (48 MB as RGB) we refuse rather than let one image hold hundreds of MB in an indexing pool.
MAX_RESIZED_PIXELS = 1 << 24


def shortest_edge_size(height: int, width: int, size: int) -> tuple[int, int]:
    """torchvision `Resize(size: int)`: the short side becomes `size`, the long side truncates.

    Mirrors `torchvision.transforms.functional._compute_resized_output_size` (no max_size).

    Returns:
        (new_height, new_width).
    """
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    return new_h, new_w


def keep_ratio_size(height: int, width: int, target: tuple[int, int], longest: float) -> tuple[int, int]:
    """open_clip's `ResizeKeepRatio.get_params` without the random terms.

    `longest=1` fits the long side inside `target`, `longest=0` makes the short side cover it.
    Sizes round half to even (Python's `round`), as open_clip does.

    Returns:
        (new_height, new_width).
    """
    ratio_h = height / target[0]
    ratio_w = width / target[1]
    ratio = max(ratio_h, ratio_w) * longest + min(ratio_h, ratio_w) * (1.0 - longest)
    return round(height * 1.0 / ratio), round(width * 1.0 / ratio)


def center_crop_or_pad(image: Image.Image, size: tuple[int, int], fill: int = 0) -> Image.Image:
    """torchvision `CenterCrop` (fill 0) and open_clip `CenterCropOrPad` on a PIL image.

    Sides smaller than the crop are padded first, the odd pixel going to the right/bottom; the
    crop offset is `int(round((side - crop) / 2.0))`, rounding half to even.
    """
    crop_h, crop_w = size
    width, height = image.size
    if crop_w > width or crop_h > height:
        ltrb = (
            (crop_w - width) // 2 if crop_w > width else 0,
            (crop_h - height) // 2 if crop_h > height else 0,
            (crop_w - width + 1) // 2 if crop_w > width else 0,
            (crop_h - height + 1) // 2 if crop_h > height else 0,
        )
        image = _pad(image, ltrb, fill)
        width, height = image.size
        if (crop_w, crop_h) == (width, height):
            return image
    top = round((height - crop_h) / 2.0)
    left = round((width - crop_w) / 2.0)
    return image.crop((left, top, left + crop_w, top + crop_h))


def _pad(image: Image.Image, ltrb: tuple[int, int, int, int], fill: int) -> Image.Image:
    """torchvision's constant padding of a PIL image (`_functional_pil.pad`)."""
    channels = len(image.getbands())
    color: int | tuple[int, ...] = fill
    if channels > 1:
        color = (int(fill),) * channels
    elif image.mode != "F":
        color = int(fill)
    if image.mode == "P":
        palette = image.getpalette()
        out = ImageOps.expand(image, border=ltrb, fill=color)
        out.putpalette(palette)  # type: ignore[arg-type]
        return out
    return ImageOps.expand(image, border=ltrb, fill=color)


def normalisation_table(mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """ToTensor + Normalize for every uint8 value: a (3, 256) float32 table.

    Computed as torch does it, in float32: `(v / 255 - mean) / std`, each step rounded.
    """
    values = np.arange(256, dtype=np.float32) / np.float32(255)
    mean32 = np.asarray(mean, dtype=np.float32)[:, None]
    std32 = np.asarray(std, dtype=np.float32)[:, None]
    return np.ascontiguousarray((values[None, :] - mean32) / std32, dtype=np.float32)


class ImagePreprocessor:
    """Turn a loaded PIL image into the model's (3, H, W) float32 input.

    Args:
        cfg: the image tower's preprocessing record from the manifest.

    Raises:
        ConfigError: sizes that are not positive, or a zero std.
    """

    def __init__(self, cfg: ImagePreprocess) -> None:
        if min(cfg.size) < 1 or cfg.resize_size < 1:
            raise ConfigError(
                f"image preprocessing sizes must be positive: size={cfg.size}, resize_size={cfg.resize_size}"
            )
        if any(s == 0 for s in cfg.std):
            raise ConfigError(f"image preprocessing std {cfg.std} has a zero")
        self.cfg = cfg
        self.size: tuple[int, int] = (int(cfg.size[0]), int(cfg.size[1]))
        self._resample = _RESAMPLE[cfg.interpolation]
        self._table = normalisation_table(cfg.mean, cfg.std)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(new_height, new_width) the resize step gives an image of `width` x `height`."""
        mode, target = self.cfg.resize_mode, self.size
        if mode == "squash":
            return target
        if mode == "longest":
            return keep_ratio_size(height, width, target, 1.0)
        if target[0] == target[1]:
            return shortest_edge_size(height, width, self.cfg.resize_size)
        # open_clip: a non-square `shortest` target covers `size` itself (ResizeKeepRatio).
        return keep_ratio_size(height, width, target, 0.0)

    def to_rgb_image(self, image: Image.Image) -> Image.Image:
        """The geometric steps and the RGB conversion: a PIL RGB image of `size`.

        Raises:
            ImageDecodeError: not a PIL image, a mode PIL cannot resize or convert, or an aspect
                ratio so extreme that the resized image would be empty or over MAX_RESIZED_PIXELS.
        """
        if not isinstance(image, Image.Image):
            raise ImageDecodeError(
                f"preprocessing takes a PIL image, got {type(image).__name__}; read it with load_image()"
            )
        width, height = image.size
        try:
            new_h, new_w = self.resized_size(width, height)
            if new_h < 1 or new_w < 1 or new_h * new_w > MAX_RESIZED_PIXELS:
                raise ImageDecodeError(
                    f"image {width}x{height} has too extreme an aspect ratio for this model: "
                    f"it would be resized to {new_w}x{new_h}"
                )
            if self.cfg.convert_rgb == "first" and image.mode != "RGB":
                image = image.convert("RGB")
            if (new_w, new_h) != image.size:  # torchvision skips the resize when nothing changes
                image = image.resize((new_w, new_h), self._resample)
            if self.cfg.resize_mode != "squash":
                fill = self.cfg.fill_color if self.cfg.resize_mode == "longest" else 0
                image = center_crop_or_pad(image, self.size, fill)
            if image.mode != "RGB":
                image = image.convert("RGB")
        except ImageDecodeError:
            raise
        except (ValueError, OSError, TypeError) as e:  # PIL: unsupported mode for resize/convert
            raise ImageDecodeError(
                f"image of mode {image.mode!r} ({width}x{height}) cannot be preprocessed: {e}"
            ) from e
        return image

    def __call__(self, image: Image.Image) -> np.ndarray:
        """Preprocess one image.

        Args:
            image: a loaded PIL image in any mode (see `indexers.images.load_image`).

        Returns:
            A (3, H, W) float32 array, normalised with the model's mean and std.

        Raises:
            ImageDecodeError: see `to_rgb_image`.
        """
        out = np.empty((3, *self.size), dtype=np.float32)
        self._normalise_into(self.to_rgb_image(image), out)
        return out

    def batch(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Preprocess several images into one (N, 3, H, W) float32 array."""
        out = np.empty((len(images), 3, *self.size), dtype=np.float32)
        for row, image in enumerate(images):
            self._normalise_into(self.to_rgb_image(image), out[row])
        return out

    def _normalise_into(self, image: Image.Image, out: np.ndarray) -> None:
        # One contiguous HWC->CHW copy, then a per-channel table lookup: 3x faster than float
        # arithmetic or a broadcast fancy index on a 224x224 image.
        planes = np.ascontiguousarray(np.asarray(image).transpose(2, 0, 1))
        for channel in range(3):
            np.take(self._table[channel], planes[channel], out=out[channel])
