"""Hostile and unusual uploads through every door: the admin (image add form and product add form with its
image inline), the API (image upload, product create with image, search by photo) and the search page.

Each input is either refused with a 4xx (or a form error) whose message names the problem, or processed
correctly; never a 500; a refusal stores nothing (no file under MEDIA_ROOT, no row).
"""
import html
import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from catalog.models import Product, ProductImage
from recommender.models import DetectedArticle, ImageAnalysis
from robust_inputs import BAD_INPUT_IDS, BAD_INPUTS, TEST_UPLOAD_LIMIT, media_files

pytestmark = pytest.mark.django_db

CATALOGUE_DOORS = ["api-image", "api-product-create", "admin-image-add", "admin-product-inline"]
SEARCH_DOORS = ["api-search", "search-page"]


def snapshot(settings):
    return {
        "files": media_files(settings.MEDIA_ROOT),
        "products": Product.objects.count(),
        "images": ProductImage.objects.count(),
        "analyses": ImageAnalysis.objects.count(),
        "articles": DetectedArticle.objects.count(),
    }


@pytest.fixture
def limits(settings):
    settings.CATALOG_MAX_UPLOAD_BYTES = TEST_UPLOAD_LIMIT
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "SEARCH_MAX_UPLOAD_BYTES": TEST_UPLOAD_LIMIT}


def upload_file(item):
    return SimpleUploadedFile(item.name, item.data, content_type=item.content_type)


def post(door, item, *, staff_api, admin_client, client, product):
    """POST ``item`` through ``door``; returns (status, message text, accepted?)."""
    file = upload_file(item)
    if door == "api-image":
        response = staff_api.post(f"/api/products/{product.pk}/images/", {"image": file}, format="multipart")
        return response.status_code, response.content.decode(), response.status_code == 201
    if door == "api-product-create":
        response = staff_api.post("/api/products/", {"sku": "NEW-1", "name": "New top", "gender": "Women",
                                                     "sub_category": "Topwear", "price": "10.00", "image": file},
                                  format="multipart")
        return response.status_code, response.content.decode(), response.status_code == 201
    if door == "admin-image-add":
        response = admin_client.post("/admin/catalog/productimage/add/",
                                     {"product": product.pk, "file": file, "position": 0})
        return response.status_code, html.unescape(response.content.decode()), response.status_code == 302
    if door == "admin-product-inline":
        response = admin_client.post("/admin/catalog/product/add/", {
            "sku": "NEW-2", "name": "New dress", "price": "30.00", "is_active": "on", "gender": "Women",
            "sub_category": "Dress", "description": "", "master_category": "Apparel", "article_type": "",
            "base_colour": "", "season": "", "usage": "", "year": "",
            "images-TOTAL_FORMS": "1", "images-INITIAL_FORMS": "0", "images-MIN_NUM_FORMS": "0",
            "images-MAX_NUM_FORMS": "1000", "images-0-file": file, "images-0-position": "0",
        })
        return response.status_code, html.unescape(response.content.decode()), response.status_code == 302
    if door == "api-search":
        response = client.post("/api/search/", {"image": file}, format="multipart")
        return response.status_code, response.content.decode(), response.status_code == 200
    if door == "search-page":
        response = client.post("/search/", {"photo": file})
        text = html.unescape(response.content.decode())
        return response.status_code, text, response.status_code == 200 and "btl__rows" in text
    raise AssertionError(door)


@pytest.fixture
def doors(staff_api, admin_client, product, fake_pipeline, limits):
    from rest_framework.test import APIClient

    client = APIClient()
    return lambda door, item: post(door, item, staff_api=staff_api, admin_client=admin_client, client=client,
                                   product=product)


def error_part(door, text):
    """The part of a response that holds the error messages (admin pages: the error lists only)."""
    if door.startswith("admin") or door == "search-page":
        found = re.findall(r'class="(?:errorlist|errornote|btl-search__errors)[^"]*"[^>]*>(.*?)</(?:ul|p|span|div)>',
                           text, flags=re.S)
        return " ".join(found)
    return text


@pytest.mark.parametrize("door", CATALOGUE_DOORS)
@pytest.mark.parametrize("item", BAD_INPUTS, ids=BAD_INPUT_IDS)
def test_catalogue_upload(doors, settings, door, item):
    before = snapshot(settings)
    status, text, accepted = doors(door, item)
    after = snapshot(settings)
    assert status < 500, text[:2000]
    if item.catalogue_error is None:
        assert accepted, f"{item.key} refused through {door}: {status} {error_part(door, text)[:1000]}"
        assert after["images"] == before["images"] + 1
        assert len(after["files"]) == len(before["files"]) + 1
        image = ProductImage.objects.order_by("-pk").first()
        stored = image.read_bytes()
        assert stored == item.data  # stored as uploaded
        from ml.images import load_image

        picture = load_image(stored)
        assert picture.mode == "RGB" and (image.width, image.height) == picture.size, \
            f"recorded {image.width}×{image.height}, displayed {picture.size}"
        assert image.file.name.startswith("products/") and ".." not in image.file.name
    else:
        assert not accepted and 400 <= status < 500 or door.startswith("admin") and status == 200, (status, text[:500])
        message = error_part(door, text)
        assert re.search(item.catalogue_error, message), f"{item.key} via {door}: {message[:1000]!r}"
        assert after == before, f"{item.key} via {door} left something behind"


@pytest.mark.parametrize("door", SEARCH_DOORS)
@pytest.mark.parametrize("item", BAD_INPUTS, ids=BAD_INPUT_IDS)
def test_search_upload(doors, settings, door, item):
    before = snapshot(settings)
    status, text, accepted = doors(door, item)
    assert status < 500, text[:2000]
    assert snapshot(settings) == before, "search by photo must never store anything"
    if item.search_error is None:
        assert accepted, f"{item.key} refused by {door}: {status} {error_part(door, text)[:1000]}"
        if door == "api-search":
            body = __import__("json").loads(text)
            assert body["is_full_shot"] is True and [row["category"] for row in body["rows"]] == ["top", "footwear"]
            picture = Image.open(io.BytesIO(item.data))
            from PIL import ImageOps

            assert (body["width"], body["height"]) == ImageOps.exif_transpose(picture).size
    else:
        assert status == 400 and not accepted, (status, text[:500])
        message = error_part(door, text)
        assert re.search(item.search_error, message), f"{item.key} via {door}: {message[:1000]!r}"


def test_the_real_default_size_limit_applies_to_api_uploads(staff_api, product, settings):
    """No lowered setting: an 11 MB file is refused by the image API with the limit in words."""
    from robust_inputs import over_limit_jpeg

    before = snapshot(settings)
    big = SimpleUploadedFile("big.jpg", over_limit_jpeg(11 * 1024 * 1024), content_type="image/jpeg")
    response = staff_api.post(f"/api/products/{product.pk}/images/", {"image": big}, format="multipart")
    assert response.status_code == 413  # refused on its declared length, before the body is read
    assert response.json() == {"detail": "the upload is 11.0 MB; files may be at most 10.0 MB here"}
    assert snapshot(settings) == before


# --------------------------------------------------------------------------------------------------
# Bounded cost per search photo


def _png(width, height):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (240, 240, 240)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@pytest.mark.parametrize("door", ["api", "page"])
def test_a_tiny_file_of_too_many_pixels_is_refused_before_decoding(db, client, door):
    """A few KB of PNG declaring 6,300 × 6,300 pixels (under the 40-megapixel staff limit) cost seconds of CPU
    per search: search photos have their own, lower pixel budget, checked on the header."""
    data = _png(6300, 6300)
    assert len(data) < 200_000
    upload = SimpleUploadedFile("huge.png", data, content_type="image/png")
    if door == "api":
        response = client.post("/api/search/", {"image": upload})
        message = " ".join(response.json()["image"])
    else:
        response = client.post("/search/", {"photo": upload})
        message = response.content.decode()
    assert response.status_code == 400
    assert "6300×6300 pixels exceeds the 16 megapixel limit" in message


def test_search_photos_are_decoded_at_a_bounded_size():
    import io

    from PIL import Image

    from ml.images import load_image

    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000), (10, 120, 200)).save(buffer, format="JPEG", quality=80)
    picture = load_image(buffer.getvalue(), max_side=1600)
    assert max(picture.size) <= 1600 and picture.size[0] > picture.size[1]
    assert load_image(_png(2400, 1200), max_side=1600).size == (1600, 800)
    assert load_image(_png(800, 600), max_side=1600).size == (800, 600)  # never enlarged


# --------------------------------------------------------------------------------------------------
# Size limits before disk


def _multipart(field, name, size):
    boundary = "BoUnDaRy"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + b"\xff" * size + tail, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("door, field, status", [
    ("/api/search/", "image", 413), ("/search/", "photo", 413), ("/api/products/", "image", 413),
])
def test_a_30_mb_upload_is_refused_before_anything_is_written(db, client, settings, tmp_path, door, field, status,
                                                              monkeypatch):
    import django.core.files.uploadhandler as handlers

    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploads")
    (tmp_path / "uploads").mkdir()
    written = []
    monkeypatch.setattr(handlers.TemporaryFileUploadHandler, "new_file",
                        lambda self, *a, **k: written.append(a) or None)
    body, content_type = _multipart(field, "big.jpg", 30 * 1024 * 1024)
    response = client.generic("POST", door, body, content_type=content_type)
    assert response.status_code == status
    text = response.content.decode()
    assert "30.0 MB" in text and ("8.0 MB" in text or "10.0 MB" in text)
    assert written == [] and list((tmp_path / "uploads").iterdir()) == []


def test_a_file_that_grows_past_the_limit_while_streaming_is_stopped_at_the_limit(rf):
    """No declared length to refuse early (a chunked body): the handler counts the file's bytes and stops at the
    chunk that crosses the limit, so the handlers after it (memory, temporary file) never get more."""
    from recommender.uploads import SizeLimitedUploadHandler, UploadTooLarge

    request = rf.post("/api/search/")
    handler = SizeLimitedUploadHandler(request)
    assert handler.handle_raw_input(None, request.META, None, "b") is None
    handler.new_file("image", "big.jpg", "image/jpeg", None)
    chunk, passed = b"\xff" * (64 * 1024), 0
    with pytest.raises(UploadTooLarge, match=r"big.jpg is larger than 8.0 MB"):
        for start in range(0, 30 * 1024 * 1024, len(chunk)):
            passed += len(handler.receive_data_chunk(chunk, start))
    assert 8 * 1024 * 1024 <= passed <= 8 * 1024 * 1024 + SizeLimitedUploadHandler.ENVELOPE
