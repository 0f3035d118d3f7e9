"""ml.images.load_image: every bad input of issue 4 gives a clear ImageError or a correct image."""
import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml import ImageError, load_image

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STREET = FIXTURES / "street_full_body.jpg"


def encode(img, fmt="PNG", **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_declaring(width, height):
    """A valid small PNG whose IHDR is rewritten to declare width × height (a decompression bomb)."""
    data = bytearray(encode(Image.new("L", (64, 64), 0)))
    ihdr = data[12:29]  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


def test_importing_ml_does_not_import_tensorflow():
    import subprocess

    code = "import ml, sys; ml.load_image; ml.ImageError; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], check=True)
    assert out.stdout.strip() == "False"


def test_image_error_is_a_value_error():
    assert issubclass(ImageError, ValueError)


@pytest.mark.parametrize("empty", [b"", bytearray(), io.BytesIO(b"")])
def test_empty_input(empty):
    with pytest.raises(ImageError, match="image is empty"):
        load_image(empty)


def test_text_is_not_an_image():
    with pytest.raises(ImageError, match=r"not an image \(cannot identify format\)"):
        load_image(b"Hello, this is a product description, not a photo.\n" * 10)


def test_truncated_jpeg():
    data = STREET.read_bytes()
    with pytest.raises(ImageError, match="truncated JPEG"):
        load_image(data[: len(data) // 2])


def test_one_pixel_image_is_too_small():
    with pytest.raises(ImageError, match="image too small: 1×1"):
        load_image(encode(Image.new("RGB", (1, 1), "red")))


def test_decompression_bomb_refused_from_its_header():
    bomb = png_declaring(30000, 30000)
    assert len(bomb) < 1000
    with pytest.raises(ImageError, match="image too large: 30000×30000 pixels exceeds the 40 megapixel limit"):
        load_image(bomb)


def test_pil_bomb_guard_beyond_its_own_limit_is_an_image_error():
    # 100000 × 100000 is beyond PIL's DecompressionBombError threshold: still our ImageError
    with pytest.raises(ImageError, match="image too large"):
        load_image(png_declaring(100_000, 100_000), max_pixels=10**12)


def test_max_pixels_and_max_bytes_are_configurable():
    data = encode(Image.new("RGB", (200, 100)))
    with pytest.raises(ImageError, match="image too large: 200×100 pixels exceeds the 0.01 megapixel"):
        load_image(data, max_pixels=10_000)
    with pytest.raises(ImageError, match="image file too large"):
        load_image(data, max_bytes=len(data) - 1)


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (64, 48), (0, 255, 255, 0))  # pure red in CMYK
    img = load_image(encode(cmyk, "JPEG", quality=95))
    assert img.mode == "RGB" and img.size == (64, 48)
    r, g, b = np.asarray(img)[24, 32].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_sixteen_bit_png_is_scaled_not_clipped():
    ramp = (np.linspace(0, 65535, 256, dtype=np.float64)[None, :].repeat(40, 0)).astype(np.uint16)
    src = Image.fromarray(ramp)
    assert src.mode.startswith("I;16")
    img = load_image(encode(src))
    arr = np.asarray(img)
    assert img.mode == "RGB"
    assert arr[0, 0, 0] == 0 and arr[0, -1, 0] == 255
    assert abs(int(arr[0, 128, 0]) - 128) <= 1  # mid-grey stays mid-grey (no saturation)


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (40, 40), (255, 0, 0, 0))  # fully transparent red
    rgba.paste((0, 0, 255, 255), (0, 0, 20, 40))  # opaque blue left half
    arr = np.asarray(load_image(encode(rgba)))
    assert tuple(arr[20, 30]) == (255, 255, 255)
    assert tuple(arr[20, 5]) == (0, 0, 255)


def test_palette_with_transparency():
    pal = Image.new("P", (40, 40), 0)
    pal.putpalette([0, 255, 0] + [0, 0, 0] * 255)
    pal.info["transparency"] = 1
    pal.paste(1, (0, 0, 40, 20))
    arr = np.asarray(load_image(encode(pal)))
    assert tuple(arr[10, 10]) == (255, 255, 255)
    assert tuple(arr[30, 10]) == (0, 255, 0)


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (48, 48), c) for c in ("red", "blue")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    arr = np.asarray(load_image(data))
    r, g, b = arr[24, 24].astype(int)
    assert r > 200 and b < 60


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (80, 40), "white")
    img.paste((255, 0, 0), (0, 0, 10, 40))  # red band on the left edge as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    out = load_image(encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.size == (40, 80)
    arr = np.asarray(out).astype(int)
    assert arr[2, 20, 0] > 200 and arr[2, 20, 1] < 80  # the red band is now on top
    assert "exif" not in out.info


@pytest.mark.parametrize("kind", ["bytes", "str", "path", "file", "pil"])
def test_every_source_kind(kind):
    source = {
        "bytes": lambda: STREET.read_bytes(),
        "str": lambda: str(STREET),
        "path": lambda: STREET,
        "file": lambda: STREET.open("rb"),
        "pil": lambda: Image.open(STREET),
    }[kind]()
    img = load_image(source)
    assert img.mode == "RGB" and img.size == (550, 810)


def test_missing_file_and_wrong_type():
    with pytest.raises(ImageError, match="not found"):
        load_image("/nonexistent/photo.jpg")
    with pytest.raises(ImageError, match="got int"):
        load_image(42)


def test_grayscale_jpeg_becomes_rgb():
    img = load_image(encode(Image.new("L", (50, 50), 77), "JPEG"))
    assert img.mode == "RGB" and abs(int(np.asarray(img)[25, 25, 1]) - 77) <= 2
