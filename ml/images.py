"""Decoding and normalising the images the pipeline is given.

``load_image(source)`` turns whatever a shop or a visitor hands us (bytes, a path, an open file,
a PIL image) into a plain 8-bit RGB ``PIL.Image.Image`` with its EXIF orientation applied, or raises
``ImageError`` with a message that names the problem ("image is empty", "truncated JPEG", ...).

It never decodes pixels before checking the declared size, so a decompression bomb (a tiny file
declaring a huge canvas) is refused from its header alone.
"""
from __future__ import annotations

import io
import os
import warnings
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "ImageError",
    "load_image",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MIN_SIDE",
]

#: Largest canvas we agree to decode (width × height), 40 megapixels.
DEFAULT_MAX_PIXELS = 40_000_000
#: Largest encoded file we agree to read, 40 MB.
DEFAULT_MAX_BYTES = 40 * 1024 * 1024
#: Smallest side in pixels worth analysing.
DEFAULT_MIN_SIDE = 32

ImageSource = Union[bytes, bytearray, memoryview, str, os.PathLike, Image.Image, BinaryIO]


class ImageError(ValueError):
    """An input that is not a usable image; the message names the problem."""


def _megapixels(n: int) -> str:
    return f"{n / 1_000_000:.3g}"


def _declared_size(data: bytes):
    """The (width, height) a file declares, read by PIL's format plugins without the bomb check.

    Only called after PIL refused the file as a decompression bomb, to name its size.
    """
    Image.init()
    prefix = data[:16]
    for format_id in Image.ID:
        factory, accept = Image.OPEN[format_id]
        try:
            if accept is not None and not accept(prefix):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return factory(io.BytesIO(data), None).size
        except Exception:  # not this format
            continue
    return None


def _read_source(source, max_bytes: int) -> bytes:
    """Return the encoded bytes of ``source`` (not a PIL image), enforcing ``max_bytes``."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            raise ImageError(f"image file not found: {path}") from None
        except OSError as exc:
            raise ImageError(f"cannot read image file {path}: {exc.strerror or exc}") from None
        if os.path.isdir(path):
            raise ImageError(f"not an image (is a directory): {path}")
        if size > max_bytes:
            raise ImageError(
                f"image file too large: {size} bytes exceeds the {max_bytes} byte limit"
            )
        try:
            with open(path, "rb") as fh:
                data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise ImageError(f"cannot read image file {path}: {exc.strerror or exc}") from None
    elif hasattr(source, "read"):
        try:
            data = source.read(max_bytes + 1)
        except OSError as exc:
            raise ImageError(f"cannot read image: {exc}") from None
        if isinstance(data, str):
            raise ImageError("not an image (a text stream was given; open the file in binary mode)")
        if data is None:
            data = b""
        data = bytes(data)
    else:
        raise ImageError(
            f"not an image: expected bytes, a path, a file object or a PIL image, "
            f"got {type(source).__name__}"
        )
    if not data:
        raise ImageError("image is empty")
    if len(data) > max_bytes:
        raise ImageError(
            f"image file too large: more than {max_bytes} bytes (the limit)"
        )
    return data


def _check_size(width: int, height: int, max_pixels: int, min_side: int) -> None:
    if width * height > max_pixels:
        raise ImageError(
            f"image too large: {width}×{height} pixels exceeds the "
            f"{_megapixels(max_pixels)} megapixel limit"
        )
    if min(width, height) < min_side:
        raise ImageError(f"image too small: {width}×{height} (the shorter side must be ≥ {min_side} pixels)")


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open (header only) with PIL's own bomb guard turned into ``ImageError``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError("not an image (cannot identify format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        size = _declared_size(data)
        declared = f"{size[0]}×{size[1]} pixels" if size else "its declared size"
        limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
        raise ImageError(
            f"image too large: {declared} exceeds the {_megapixels(limit)} megapixel limit "
            f"(refused as a decompression bomb before decoding)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"not an image (cannot read header: {exc})") from None


def _decode(img: Image.Image) -> Image.Image:
    fmt = img.format or "image"
    try:
        img.seek(0)  # animated GIF / APNG / multi-page TIFF: the first frame
    except (EOFError, AttributeError, ValueError):
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image too large: decompression bomb refused ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError) as exc:
        message = str(exc)
        lowered = message.lower()
        if "truncated" in lowered or "premature end" in lowered or isinstance(exc, EOFError):
            raise ImageError(f"truncated {fmt}") from None
        raise ImageError(f"corrupt {fmt}: {message or type(exc).__name__}") from None
    return img


def _sixteen_bit_to_8(img: Image.Image) -> Image.Image:
    """Grayscale 16/32-bit integer or float images → 8-bit "L", scaled (not clipped)."""
    arr = np.asarray(img)
    if img.mode == "F":
        arr = arr.astype(np.float64)
        top = 1.0 if np.nanmax(arr) <= 1.0 else 255.0
        arr = np.nan_to_num(arr) / top * 255.0
    elif img.mode.startswith("I;16") or arr.dtype == np.uint16:
        arr = arr.astype(np.float64) / 65535.0 * 255.0
    else:  # "I": 32-bit signed; PNG 16-bit grayscale can arrive like this
        arr = arr.astype(np.float64)
        top = 255.0 if arr.max(initial=0) <= 255 else 65535.0
        arr = arr / top * 255.0
    arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)  # 2-D uint8 → mode "L"


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info
    )


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        img = _sixteen_bit_to_8(img)
    if _has_alpha(img):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode == "RGB":
        return img
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(f"unsupported colour mode {img.mode}: {exc}") from None


def load_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    min_side: int = DEFAULT_MIN_SIDE,
    max_side: int | None = None,
) -> Image.Image:
    """Decode ``source`` into an 8-bit RGB image with EXIF orientation applied.

    ``source`` may be ``bytes``, a path (``str``/``os.PathLike``), a binary file object or a
    ``PIL.Image.Image``. Transparent pixels are composited on white, 16-bit images are scaled to
    8 bits, CMYK and palette images are converted, animated images give their first frame.

    Raises ``ImageError`` (a ``ValueError``) naming the problem: empty, not an image, truncated,
    too large (declared size checked before decoding; ``max_pixels``), file too big
    (``max_bytes``) or too small (``min_side``).

    ``max_side``: the result's longer side at most this many pixels — a JPEG is decoded at reduced
    size from the start (DCT scaling, ``draft``), other formats are reduced after decoding; bounds the
    cost of every later step whatever the photo's size.
    """
    if isinstance(source, Image.Image):
        img = source
        _check_size(img.width, img.height, max_pixels, min_side)
        try:
            img.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            if "truncated" in str(exc).lower():
                raise ImageError(f"truncated {img.format or 'image'}") from None
            raise ImageError(f"corrupt {img.format or 'image'}: {exc}") from None
    else:
        data = _read_source(source, max_bytes)
        img = _open(data, max_pixels)
        _check_size(img.width, img.height, max_pixels, min_side)
        if max_side and img.format == "JPEG" and max(img.size) > max_side:
            img.draft("RGB", (max_side, max_side))  # decode at 1/2, 1/4 or 1/8 scale, still ≥ max_side
        img = _decode(img)

    try:
        oriented = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not make a good image unusable
        oriented = None
    if oriented is not None:
        img = oriented
    rgb = _to_rgb(img)
    if max_side and max(rgb.size) > max_side:
        rgb = rgb.copy() if rgb is source else rgb
        rgb.thumbnail((max_side, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    if rgb is source:
        rgb = rgb.copy()
    rgb.info.pop("exif", None)
    return rgb
