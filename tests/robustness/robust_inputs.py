"""Hostile and unusual image files, built in memory (nothing here allocates a huge canvas)."""
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[2]


def photo(size=(120, 200), mode="RGB", seed=0):
    """A small picture with some structure (a figure on a background)."""
    image = Image.new("RGB", size, (230 - seed % 50, 225, 215))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle([w // 3, h // 8, 2 * w // 3, h // 2], fill=(40 + seed % 200, 60, 150))
    draw.rectangle([w // 3, h // 2, 2 * w // 3, 7 * h // 8], fill=(30, 30, 30 + seed % 200))
    return image if mode == "RGB" else image.convert(mode)


def encode(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(size=(120, 200), seed=0):
    return encode(photo(size, seed=seed), "JPEG", quality=88)


def noisy_jpeg(size=(200, 200)):
    return encode(Image.effect_noise(size, 80).convert("RGB"), "JPEG", quality=90)


def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width, height):
    """A valid PNG signature and IHDR declaring width×height, one tiny IDAT and IEND: a bomb's header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + png_chunk(b"IEND", b""))


def sixteen_bit_png():
    image = Image.new("I;16", (64, 96))
    image.putdata([(x * 977) % 65535 for x in range(64 * 96)])
    data = encode(image, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")  # really 16-bit on disk
    return data


def cmyk_jpeg():
    data = encode(photo((80, 120), "CMYK"), "JPEG")
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    return data


def alpha_png():
    image = photo((90, 140)).convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize((90, 140)))
    return encode(image, "PNG")


def animated_gif():
    frames = [photo((64, 96), seed=i * 40).convert("P") for i in range(4)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 4
    return data


def exif_rotated_jpeg():
    """Stored 160×80 (landscape) with EXIF orientation 6: shown as 80×160 (portrait)."""
    image = photo((160, 80))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(image, "JPEG", exif=exif.tobytes())


SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="200" height="300">'
       b'<rect width="200" height="300" fill="red"/><script>alert(1)</script></svg>')
TEXT = b"Dear shop, this is a text file renamed photo.jpg\n" * 20


def over_limit_jpeg(limit):
    """A valid JPEG padded after its end marker to just over ``limit`` bytes."""
    data = jpeg((64, 64))
    return data + b"\x00" * (limit + 1 - len(data))


@dataclass(frozen=True)
class BadInput:
    key: str
    name: str
    data: bytes
    content_type: str
    #: for the catalogue (admin/API) and for search: None = accepted, else a regex the error must match
    catalogue_error: str | None
    search_error: str | None


#: The uploads limit used by the tests of the "over the size limit" input (settings are lowered to it).
TEST_UPLOAD_LIMIT = 60_000


def bad_inputs():
    truncated = noisy_jpeg()
    return [
        BadInput("empty", "empty.jpg", b"", "image/jpeg", r"(?i)empty", r"(?i)empty"),
        BadInput("text-as-jpg", "notes.jpg", TEXT, "image/jpeg", r"(?i)not an image|valid image",
                 r"(?i)not an image"),
        BadInput("truncated-jpeg", "cut.jpg", truncated[: len(truncated) * 2 // 3], "image/jpeg",
                 r"(?i)truncated|corrupt", r"(?i)truncated|corrupt"),
        BadInput("png-30000x30000", "bomb.png", png_declaring(30000, 30000), "image/png",
                 r"(?i)too large|megapixel|pixel limit", r"(?i)too large|megapixel"),
        BadInput("1x1", "dot.png", encode(Image.new("RGB", (1, 1), "red"), "PNG"), "image/png",
                 r"(?i)at least 32|too small", r"(?i)too small|at least"),
        BadInput("16-bit-png", "deep.png", sixteen_bit_png(), "image/png", None, None),
        BadInput("cmyk-jpeg", "print.jpg", cmyk_jpeg(), "image/jpeg", None, None),
        BadInput("alpha-png", "cutout.png", alpha_png(), "image/png", None, None),
        BadInput("animated-gif", "moving.gif", animated_gif(), "image/gif", None, None),
        BadInput("exif-rotated", "phone.jpg", exif_rotated_jpeg(), "image/jpeg", None, None),
        BadInput("bmp", "old.bmp", encode(photo((64, 64)), "BMP"), "image/bmp",
                 r"(?i)unsupported image format BMP|format", None),
        BadInput("tiff", "scan.tif", encode(photo((64, 64)), "TIFF"), "image/tiff",
                 r"(?i)unsupported image format TIFF|format", None),
        BadInput("svg", "vector.svg", SVG, "image/svg+xml", r"(?i)not an image|valid image", r"(?i)not an image"),
        BadInput("over-limit", "huge.jpg", over_limit_jpeg(TEST_UPLOAD_LIMIT), "image/jpeg",
                 r"(?i)limit|at most", r"(?i)limit|at most"),
    ]


BAD_INPUTS = bad_inputs()
BAD_INPUT_IDS = [item.key for item in BAD_INPUTS]


def media_files(root):
    root = Path(root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
