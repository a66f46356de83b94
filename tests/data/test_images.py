"""`load_rgb`: each kind of file a generation run meets gives an RGB image or one `BadImageError`."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vigc.data.images import BadImageError, load_rgb


def _noise(width: int = 48, height: int = 32) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (1-bit grey) with a token IDAT: opening reads only the header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))


def test_rgb_jpeg_loads_detached_from_file(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    _noise().save(path, quality=95)
    image = load_rgb(path)
    assert image.mode == "RGB" and image.size == (48, 32)
    path.unlink()  # the image was decoded eagerly, so it no longer needs the file
    assert np.asarray(image).shape == (32, 48, 3)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("this is not a jpeg\n"), "not an image"),
        (lambda p: p.mkdir(), "not a regular file"),
    ],
)
def test_unusable_files_raise_one_line_reason(tmp_path: Path, make, reason: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.jpg"
    make(path)
    with pytest.raises(BadImageError, match=reason) as info:
        load_rgb(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file_raises(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"cut.{fmt.lower()}"
    _noise(64, 64).save(path, fmt)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BadImageError, match="truncated"):
        load_rgb(path)


def test_decompression_bomb_is_an_error_not_a_warning(tmp_path: Path) -> None:
    hard = tmp_path / "hard.png"  # beyond PIL's own hard limit: PIL refuses at open
    _png_header_only(hard, 20_000, 20_000)
    soft = tmp_path / "soft.png"  # between PIL's warning and error limits: PIL only warns, our limit decides
    _png_header_only(soft, 12_000, 12_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any DecompressionBombWarning reaching the caller fails the test
        with pytest.raises(BadImageError, match="too large"):
            load_rgb(hard)
        with pytest.raises(BadImageError, match="max_pixels=100000000"):
            load_rgb(soft, max_pixels=100_000_000)
        with pytest.raises(BadImageError, match="max_pixels=64000000"):  # the default limit, from the header
            load_rgb(soft)
        with pytest.raises(BadImageError, match="truncated"):  # allowed by size, so decoding is tried (and fails)
            load_rgb(soft, max_pixels=150_000_000)


def test_max_pixels_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    _noise(20, 10).save(path)
    with pytest.raises(BadImageError, match="20x10 = 200 pixels"):
        load_rgb(path, max_pixels=199)
    assert load_rgb(path, max_pixels=200).size == (20, 10)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=100)  # pure red in CMYK
    image = load_rgb(path)
    assert image.mode == "RGB"
    red, green, blue = image.getpixel((8, 8))  # type: ignore[misc]
    assert red > 240 and green < 15 and blue < 15


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    pixels = np.asarray(load_rgb(path))
    expected = np.rint(ramp / 257.0).astype(np.uint8)
    assert np.array_equal(pixels[..., 0], expected) and np.array_equal(pixels[..., 2], expected)
    assert pixels.mean() == pytest.approx(127.5, abs=1)  # clipping would make almost every pixel 255


def test_sixteen_bit_tiff_is_scaled(tmp_path: Path) -> None:
    path = tmp_path / "deep.tif"
    Image.fromarray(np.full((8, 8), 32896, dtype=np.uint16)).save(path)  # 32896 / 257 = 128
    assert load_rgb(path).getpixel((0, 0)) == (128, 128, 128)


def test_float_tiff_in_unit_range_is_scaled(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32)).save(path)
    assert load_rgb(path).getpixel((0, 0)) == (128, 128, 128)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_white(tmp_path: Path, mode: str) -> None:
    image = Image.new(mode, (4, 2), (0, 0, 0, 0) if mode == "RGBA" else (0, 0))
    image.putpixel((0, 0), (0, 0, 0, 255) if mode == "RGBA" else (0, 255))  # one opaque black pixel
    path = tmp_path / f"alpha_{mode}.png"
    image.save(path)
    loaded = load_rgb(path)
    assert loaded.getpixel((0, 0)) == (0, 0, 0)
    assert loaded.getpixel((1, 0)) == (255, 255, 255)  # fully transparent black shows the white background


def test_palette_transparency_is_composited_on_white(tmp_path: Path) -> None:
    image = Image.new("P", (4, 1), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((1, 0), 1)
    path = tmp_path / "palette.gif"
    image.save(path, transparency=0)
    loaded = load_rgb(path)
    assert loaded.getpixel((0, 0)) == (255, 255, 255)
    assert loaded.getpixel((1, 0)) == (255, 0, 0)


@pytest.mark.parametrize(("mode", "value", "expected"), [("L", 77, (77, 77, 77)), ("1", 1, (255, 255, 255))])
def test_greyscale_and_bilevel_become_rgb(tmp_path: Path, mode: str, value: int, expected: tuple) -> None:
    path = tmp_path / f"grey_{mode}.png"
    Image.new(mode, (3, 3), value).save(path)
    loaded = load_rgb(path)
    assert loaded.mode == "RGB" and loaded.getpixel((1, 1)) == expected


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = Image.new("RGB", (40, 20), (255, 0, 0))
    stored.paste((0, 0, 255), (20, 0, 40, 20))  # left half red, right half blue, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    stored.save(path, quality=100, exif=exif.tobytes())
    shown = load_rgb(path)
    assert shown.size == (20, 40)  # width and height swap
    top, bottom = shown.getpixel((10, 5)), shown.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 50  # type: ignore[index]  # stored left (red) is now on top
    assert bottom[2] > 200 and bottom[0] < 50  # type: ignore[index]
    # Training reads images through the same loader: a rotated photo looks the same to the model in both.
    from vigc.data.datasets import load_image

    assert load_image(path).tobytes() == shown.tobytes()


def _png_bomb(path: Path, width: int, height: int) -> None:
    """A real, decodable all-black greyscale PNG of width x height, written row by row (a few hundred KB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, row, parts = zlib.compressobj(9), b"\x00" * (width + 1), []  # filter byte + pixels
    for _ in range(height):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
    )


def test_a_real_bomb_is_refused_without_decoding(tmp_path: Path) -> None:
    """A 13000 x 13000 PNG (169 Mpx, under PIL's own limit) decodes to 1.3 GB of RGB; the default limit refuses it
    from the header, so peak memory does not move (measured in a fresh process)."""
    bomb = tmp_path / "bomb.png"
    _png_bomb(bomb, 13_000, 13_000)
    assert bomb.stat().st_size < 1_000_000
    script = textwrap.dedent(
        f"""
        import resource
        from vigc.data.images import BadImageError, load_rgb
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_rgb({str(bomb)!r})
        except BadImageError as exc:
            assert "max_pixels=64000000" in str(exc), exc
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert int(result.stdout.strip()) < 50_000  # KB: far from the 1.3 GB a decode costs
