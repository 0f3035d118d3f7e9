"""Checks for uploaded product images, shared by the model field (so the admin and the API apply them)
and the import commands.

``validate_image_upload(file) -> (width, height, format)`` raises ``django.core.exceptions.ValidationError``
with a message naming the problem:

- empty file; file over ``settings.CATALOG_MAX_UPLOAD_BYTES`` (default 10 MB);
- not an image (Pillow cannot identify it); format other than JPEG, PNG, WebP, GIF;
- declared size over ``CATALOG_MAX_IMAGE_PIXELS`` (default 40 megapixels) — checked from the header, before
  decoding; smaller than ``CATALOG_MIN_IMAGE_SIDE`` (default 32) pixels on either side;
- truncated or corrupt pixel data (the image is fully decoded once).
"""
import warnings

from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from PIL import Image, UnidentifiedImageError

ALLOWED_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "GIF": "GIF"}
EXTENSION_FOR_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif"}
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
DEFAULT_MIN_IMAGE_SIDE = 32


def max_upload_bytes():
    return int(getattr(settings, "CATALOG_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES))


def _file_size(file):
    size = getattr(file, "size", None)
    if size is not None:
        return size
    position = file.tell()
    file.seek(0, 2)
    size = file.tell()
    file.seek(position)
    return size


def validate_image_upload(file):
    """Check an uploaded (or local) image file; return ``(width, height, format)``."""
    max_bytes = max_upload_bytes()
    max_pixels = int(getattr(settings, "CATALOG_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS))
    min_side = int(getattr(settings, "CATALOG_MIN_IMAGE_SIDE", DEFAULT_MIN_IMAGE_SIDE))

    size = _file_size(file)
    if not size:
        raise ValidationError("The file is empty.", code="empty")
    if size > max_bytes:
        raise ValidationError(
            "The file is %(size)s; the limit is %(limit)s.",
            code="file_too_large", params={"size": filesizeformat(size), "limit": filesizeformat(max_bytes)},
        )
    file.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(file)
            width, height = image.size
            image_format = image.format
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationError("The image is far too large (declared size over the pixel limit).", code="too_many_pixels")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ValidationError("The file is not an image (or not one Pillow can read).", code="not_an_image")
    try:
        if image_format not in ALLOWED_FORMATS:
            raise ValidationError(
                "Unsupported image format %(format)s; allowed: JPEG, PNG, WebP, GIF.",
                code="unsupported_format", params={"format": image_format or "unknown"},
            )
        if width * height > max_pixels:
            raise ValidationError(
                "The image is %(width)s×%(height)s (%(mp).1f megapixels); the limit is %(limit)s megapixels.",
                code="too_many_pixels",
                params={"width": width, "height": height, "mp": width * height / 1e6, "limit": max_pixels // 1_000_000},
            )
        if width < min_side or height < min_side:
            raise ValidationError(
                "The image is %(width)s×%(height)s; it must be at least %(min)s×%(min)s pixels.",
                code="too_small", params={"width": width, "height": height, "min": min_side},
            )
        try:
            image.load()
        except Exception:  # Pillow raises OSError, SyntaxError, ValueError... for broken data
            raise ValidationError("The image is truncated or corrupt.", code="truncated")
    finally:
        # Not image.close(): Pillow 13 would close the caller's file too.
        file.seek(0)
    return width, height, image_format


def validate_image_field(value):
    """Model field validator: check new uploads only (a stored file was checked when it came in)."""
    if not value or getattr(value, "_committed", False):
        return
    validate_image_upload(value)


def _form_image_field():
    from django import forms

    class CheckedImageFormField(forms.ImageField):
        """The admin's image form field: the shared checks run first, so a refusal names its problem (Django's
        own ``ImageField`` says "not an image or a corrupted image" for a decompression bomb too)."""

        def to_python(self, data):
            upload = forms.FileField.to_python(self, data)
            if upload is not None:
                validate_image_upload(upload)
            return super().to_python(data)

    return CheckedImageFormField


CheckedImageFormField = _form_image_field()
