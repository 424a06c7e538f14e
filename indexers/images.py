"""Run-time image loading with PIL: decode fully, apply EXIF orientation, refuse bad input early.

Every failure ends as `ImageDecodeError` whose message names the source, so an indexing job can
log the bad item and go on. No torch here: this module is on the query path.
"""

from __future__ import annotations

import io
import threading
import warnings
from pathlib import Path
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

from mmsearch.errors import ImageDecodeError

# 64 megapixels: above every common camera sensor (61 MP full frame, 50 MP phones, whose 200 MP
# modes are opt-in) and below PIL's own 89 MP bomb warning, yet it bounds one decoded image to
# 256 MB (RGBA). A crafted PNG or GIF can claim 2^31 x 2^31 pixels in a 100-byte file; the
# header check refuses such a file before a single pixel is allocated.
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024

ImageSource = str | Path | bytes | bytearray | memoryview | Image.Image

# `warnings.catch_warnings` swaps process-wide state; the lock keeps our own threads (an indexing
# pool decoding in parallel) from restoring each other's filters. Only the header is parsed under
# it: the decode itself, the slow part, runs outside.
_OPEN_LOCK = threading.Lock()


def describe_source(src: object) -> str:
    """A short human name for an image source, used in error messages."""
    if isinstance(src, (str, Path)):
        return repr(str(src))
    if isinstance(src, (bytes, bytearray, memoryview)):
        return f"<{len(src):,} bytes>"
    if isinstance(src, Image.Image):
        return f"<PIL image {src.mode} {src.width}x{src.height}>"
    return f"<{type(src).__name__}>"


def load_image(src: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image completely and apply its EXIF orientation.

    The mode is kept as stored (RGB, L, P, RGBA, CMYK, I;16...): the preprocessor converts to RGB
    at the point where the model's own transform does, which matters for palette, alpha and
    16-bit images.

    Args:
        src: a file path, the encoded bytes, or a PIL image (not modified; a new image is returned).
        max_pixels: refuse images with more than width*height pixels, read from the header
            before decoding (decompression-bomb guard).

    Returns:
        A loaded PIL image, detached from any file.

    Raises:
        ImageDecodeError: missing or empty file, not an image, corrupt or truncated data, an image
            over `max_pixels`, or a source of an unsupported type. The message names the source.
    """
    name = describe_source(src)
    if isinstance(src, Image.Image):
        return _from_pil(src, name, max_pixels)
    if isinstance(src, (bytes, bytearray, memoryview)):
        if len(src) == 0:
            raise ImageDecodeError(f"image {name} is empty: no bytes to decode")
        return _decode(io.BytesIO(bytes(src)), name, max_pixels)
    if isinstance(src, (str, Path)):
        path = Path(src).expanduser()
        if not path.exists():
            raise ImageDecodeError(f"image file {name} does not exist")
        if not path.is_file():
            raise ImageDecodeError(f"image file {name} is not a regular file")
        try:
            with open(path, "rb") as fp:
                if path.stat().st_size == 0:
                    raise ImageDecodeError(f"image file {name} is empty (0 bytes)")
                return _decode(fp, name, max_pixels)
        except OSError as e:  # permission denied, I/O error; decode errors are already mapped
            raise ImageDecodeError(f"cannot read image file {name}: {e}") from e
    raise ImageDecodeError(
        f"unsupported image source {name}: expected a file path (str or Path), bytes, or a PIL.Image"
    )


def _decode(fp: IO[bytes], name: str, max_pixels: int) -> Image.Image:
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that; make it an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(fp)
    except UnidentifiedImageError as e:
        raise ImageDecodeError(f"image {name} is not an image, or in a format PIL cannot read") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageDecodeError(f"image {name} refused as a decompression bomb: {e}") from e
    except Exception as e:  # plugins raise SyntaxError, ValueError, struct.error... on bad headers
        raise ImageDecodeError(f"image {name} has a corrupt or truncated header: {e}") from e
    _check_pixels(image, name, max_pixels)
    try:
        image.load()
        # In place: the freshly opened image is ours, so no copy of the pixels is needed.
        ImageOps.exif_transpose(image, in_place=True)
    except Exception as e:  # truncated (OSError), corrupt stream (OSError, SyntaxError, ValueError...)
        raise ImageDecodeError(f"image {name} is corrupt or truncated: {e}") from e
    return image


def _from_pil(image: Image.Image, name: str, max_pixels: int) -> Image.Image:
    _check_pixels(image, name, max_pixels)
    try:
        image.load()
        # Not in place: a new image, so the caller's stays as it was.
        return ImageOps.exif_transpose(image)
    except Exception as e:
        raise ImageDecodeError(f"image {name} is corrupt or truncated: {e}") from e


def _check_pixels(image: Image.Image, name: str, max_pixels: int) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageDecodeError(f"image {name} has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"image {name} is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (decompression-bomb guard); pass a larger max_pixels if the source is trusted"
        )
