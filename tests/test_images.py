"""indexers.images.load_image: every bad input ends as ImageDecodeError naming its source."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexers.images import DEFAULT_MAX_PIXELS, load_image
from mmsearch.errors import ImageDecodeError, InputError


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def noise(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header announcing width x height, with almost no pixel data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def two_halves_jpeg(orientation: int | None) -> bytes:
    """40x20 JPEG, left half red, right half blue, with an optional EXIF orientation."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    kwargs: dict[str, object] = {"quality": 95}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    return encode(Image.fromarray(pixels), "JPEG", **kwargs)


def decode_error(src: object, **kwargs: object) -> str:
    with pytest.raises(ImageDecodeError) as info:
        load_image(src, **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, InputError)
    return str(info.value)


# --- bad files ---------------------------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.jpg"
    message = decode_error(path)
    assert str(path) in message and "does not exist" in message


def test_missing_file_as_str(tmp_path: Path) -> None:
    path = str(tmp_path / "gone.png")
    assert path in decode_error(path)


def test_folder_is_not_an_image(tmp_path: Path) -> None:
    message = decode_error(tmp_path)
    assert str(tmp_path) in message and "not a regular file" in message


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    message = decode_error(path)
    assert str(path) in message and "empty" in message


def test_empty_bytes() -> None:
    assert "empty" in decode_error(b"")


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is a shopping list, not a photo\n")
    message = decode_error(path)
    assert str(path) in message and "not an image" in message


@pytest.mark.parametrize(
    "blob",
    [
        np.random.default_rng(1).integers(0, 256, 1000, dtype=np.uint8).tobytes(),
        b"\x89PNG\r\n\x1a\n",  # a PNG signature and nothing else
        b"\xff\xd8\xff",  # a JPEG start-of-image marker and nothing else
    ],
    ids=["random-bytes", "png-signature-only", "jpeg-soi-only"],
)
def test_garbage_bytes(blob: bytes) -> None:
    message = decode_error(blob)
    assert f"<{len(blob):,} bytes>" in message


def test_corrupt_png_stream() -> None:
    png = encode(noise(), "PNG")
    corrupt = png[:60] + bytes(200) + png[260:]  # zeros over the start of the compressed pixels
    message = decode_error(corrupt)
    assert f"<{len(corrupt):,} bytes>" in message and "corrupt" in message


def test_corrupt_file_names_the_path(tmp_path: Path) -> None:
    png = encode(noise(), "PNG")
    path = tmp_path / "corrupt.png"
    path.write_bytes(png[:60] + bytes(200) + png[260:])
    assert str(path) in decode_error(path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_is_refused(fmt: str, tmp_path: Path) -> None:
    blob = encode(noise(), fmt)
    path = tmp_path / f"half.{fmt.lower()}"
    path.write_bytes(blob[: len(blob) // 2])
    message = decode_error(path)
    assert str(path) in message and "truncated" in message


def test_truncated_jpeg_header() -> None:
    blob = encode(noise(), "JPEG")[:100]
    assert "truncated" in decode_error(blob)


# --- decompression bombs ----------------------------------------------------------------------


def test_header_over_max_pixels_is_refused_before_decoding() -> None:
    blob = png_claiming(9000, 9000)  # 81 M pixels: over 64 M, under PIL's own 89 M warning
    message = decode_error(blob)
    assert "9000x9000" in message and f"{DEFAULT_MAX_PIXELS:,}" in message


def test_max_pixels_is_configurable() -> None:
    image = noise(100, 50)
    message = decode_error(image, max_pixels=4999)
    assert "100x50" in message and "4,999" in message
    assert load_image(image, max_pixels=5000).size == (100, 50)


def test_giant_header_hits_pils_bomb_error() -> None:
    # 2.5 G pixels: PIL raises DecompressionBombError itself, inside Image.open.
    message = decode_error(png_claiming(50000, 50000), max_pixels=10**12)
    assert "decompression bomb" in message


def test_pils_bomb_warning_becomes_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    blob = encode(noise(60, 50), "PNG")  # 3000 pixels: PIL only warns between 1x and 2x the limit
    message = decode_error(blob, max_pixels=10**9)
    assert "decompression bomb" in message


# --- unsupported sources ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "src", [123, None, np.zeros((4, 4, 3), np.uint8), ["a.jpg"]], ids=["int", "none", "ndarray", "list"]
)
def test_unsupported_source_type(src: object) -> None:
    message = decode_error(src)
    assert f"<{type(src).__name__}>" in message and "expected a file path" in message


# --- good inputs --------------------------------------------------------------------------------


def test_path_str_bytes_and_pil_agree(tmp_path: Path) -> None:
    image = noise(37, 23, seed=4)
    blob = encode(image, "PNG")
    path = tmp_path / "img.png"
    path.write_bytes(blob)
    expected = np.asarray(image)
    for src in (path, str(path), blob, bytearray(blob), memoryview(blob), image, Image.open(io.BytesIO(blob))):
        got = load_image(src)
        assert got.size == (37, 23)
        np.testing.assert_array_equal(np.asarray(got), expected)


def test_home_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "a.png").write_bytes(encode(noise(), "PNG"))
    assert load_image("~/a.png").size == (64, 48)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "I;16", "1", "CMYK"])
def test_mode_is_kept(mode: str) -> None:
    image = (
        noise().convert(mode)
        if mode != "I;16"
        else Image.fromarray(np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 13)
    )
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "LA" else "PNG")
    got = load_image(encode(image, fmt))
    assert got.mode == image.mode


def test_image_is_fully_decoded(tmp_path: Path) -> None:
    path = tmp_path / "img.jpg"
    path.write_bytes(encode(noise(), "JPEG"))
    image = load_image(path)
    path.unlink()  # nothing left to read lazily
    assert image.getpixel((0, 0)) is not None
    assert np.asarray(image).shape == (48, 64, 3)


def test_exif_rotated_jpeg_comes_back_rotated() -> None:
    plain = load_image(two_halves_jpeg(None))
    assert plain.size == (40, 20)
    # Orientation 6: the camera was turned; display rotates 90 degrees clockwise, so the left
    # (red) half ends on top and the right (blue) half at the bottom.
    rotated = load_image(two_halves_jpeg(6))
    assert rotated.size == (20, 40)
    top, bottom = np.asarray(rotated)[5, 10], np.asarray(rotated)[35, 10]
    assert top[0] > 200 and top[2] < 50, top
    assert bottom[2] > 200 and bottom[0] < 50, bottom
    assert 0x0112 not in rotated.getexif()


@pytest.mark.parametrize("orientation,size", [(1, (40, 20)), (3, (40, 20)), (8, (20, 40))])
def test_other_orientations(orientation: int, size: tuple[int, int]) -> None:
    image = load_image(two_halves_jpeg(orientation))
    assert image.size == size
    if orientation == 3:  # rotated 180: blue now on the left
        assert np.asarray(image)[10, 5][2] > 200


def test_pil_input_is_not_modified() -> None:
    original = Image.open(io.BytesIO(two_halves_jpeg(6)))
    rotated = load_image(original)
    assert rotated.size == (20, 40)
    assert original.size == (40, 20)
    assert original.getexif().get(0x0112) == 6


def test_error_message_quotes_path_exactly(tmp_path: Path) -> None:
    path = tmp_path / "we ird'name.jpg"
    path.write_bytes(b"GIF89a nonsense")
    assert re.search(re.escape(repr(str(path))), decode_error(path))
