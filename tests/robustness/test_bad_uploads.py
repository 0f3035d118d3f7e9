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
    assert response.status_code == 400
    assert "the limit is 10.0 MB" in response.content.decode().replace("\xa0", " ")
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
