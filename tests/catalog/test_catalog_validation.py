"""catalog.validation.validate_image_upload: every refusal names its problem."""
import io
import struct
import zlib

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from catalog.validation import validate_image_upload

from catalog_helpers import image_bytes, noisy_jpeg


def upload(data, name="photo.jpg"):
    return SimpleUploadedFile(name, data)


def png_header_only(width, height):
    """A PNG that declares width×height but holds no pixel data (a decompression bomb's header)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt, expected", [("JPEG", "JPEG"), ("PNG", "PNG"), ("WEBP", "WEBP"), ("GIF", "GIF")])
def test_supported_formats_pass_and_report_their_size(fmt, expected):
    assert validate_image_upload(upload(image_bytes((70, 40), fmt))) == (70, 40, expected)


def test_the_file_is_left_readable_from_the_start():
    file = upload(image_bytes())
    validate_image_upload(file)
    assert not file.closed and file.tell() == 0 and file.read(2) == b"\xff\xd8"


@pytest.mark.parametrize("data, message", [
    (b"", "The file is empty."),
    (b"hello, I am a text file", "not an image"),
    (image_bytes(fmt="BMP"), "Unsupported image format BMP"),
    (image_bytes(fmt="TIFF"), "Unsupported image format TIFF"),
    (image_bytes((31, 100)), "at least 32×32"),
    (png_header_only(8000, 6000), "48.0 megapixels"),
    (png_header_only(100_000, 100_000), "far too large"),
])
def test_refusals_name_the_problem(data, message):
    with pytest.raises(ValidationError) as error:
        validate_image_upload(upload(data))
    assert message in " ".join(error.value.messages)


def test_truncated_image_is_refused():
    whole = noisy_jpeg()
    with pytest.raises(ValidationError, match="truncated or corrupt"):
        validate_image_upload(upload(whole[: len(whole) * 2 // 3]))


def test_file_size_limit_comes_from_the_setting(settings):
    data = image_bytes((100, 100))
    settings.CATALOG_MAX_UPLOAD_BYTES = len(data) - 1
    with pytest.raises(ValidationError, match="the limit is"):
        validate_image_upload(upload(data))
    settings.CATALOG_MAX_UPLOAD_BYTES = len(data)
    assert validate_image_upload(upload(data))[:2] == (100, 100)


def test_works_on_plain_binary_files(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (33, 33)).save(path)
    with open(path, "rb") as handle:
        assert validate_image_upload(handle) == (33, 33, "PNG")
    assert validate_image_upload(io.BytesIO(path.read_bytes())) == (33, 33, "PNG")
