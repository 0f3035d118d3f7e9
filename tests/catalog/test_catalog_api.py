"""/api/products/: public reading, staff writing, image uploads validated like the admin's."""
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import resolve
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from catalog.models import Product, ProductImage

from catalog_helpers import image_bytes, media_files, noisy_jpeg


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def staff_api(db):
    user = get_user_model().objects.create_user("staff", password="x-Secret-9", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def customer_api(db):
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_user("customer", password="x-Secret-9"))
    return client


@pytest.fixture
def products(make_product, add_image):
    dress = make_product(sku="D1", name="Red Dress", gender="Women", sub_category="Dress", article_type="Dresses",
                         base_colour="Red")
    add_image(dress)
    tee = make_product(sku="T1", name="Blue Tee", gender="Men", article_type="Tshirts", base_colour="Blue")
    hidden = make_product(sku="H1", name="Hidden Tee", gender="Men", article_type="Tshirts", is_active=False)
    return {"dress": dress, "tee": tee, "hidden": hidden}


def photo(name="photo.jpg", data=None, content_type="image/jpeg"):
    return SimpleUploadedFile(name, data or image_bytes((90, 120)), content_type=content_type)


@pytest.mark.django_db
def test_anyone_lists_active_products(api, products):
    response = api.get("/api/products/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2 and sorted(p["sku"] for p in body["results"]) == ["D1", "T1"]
    dress = next(p for p in body["results"] if p["sku"] == "D1")
    assert dress["look_category"] == "dress" and dress["url"].endswith(products["dress"].get_absolute_url())
    assert dress["primary_image"].startswith("http://testserver/media/products/d1/")
    assert dress["images"][0]["width"] == 64 and "image" not in dress


@pytest.mark.django_db
@pytest.mark.parametrize("query, expected", [
    ("gender=women", ["D1"]),
    ("look_category=top", ["T1"]),
    ("look_category=dress", ["D1"]),
    ("article_type=tshirts", ["T1"]),
    ("colour=RED", ["D1"]),
    ("search=blue", ["T1"]),
    ("search=d1", ["D1"]),
])
def test_list_filters(api, products, query, expected):
    response = api.get(f"/api/products/?{query}")
    assert sorted(p["sku"] for p in response.json()["results"]) == expected


@pytest.mark.django_db
def test_retrieve_and_images(api, products):
    dress = products["dress"]
    assert api.get(f"/api/products/{dress.pk}/").json()["name"] == "Red Dress"
    images = api.get(f"/api/products/{dress.pk}/images/").json()
    assert len(images) == 1 and images[0]["is_primary"] and len(images[0]["sha256"]) == 64
    assert api.get(f"/api/products/{products['hidden'].pk}/").status_code == 404


@pytest.mark.django_db
def test_anonymous_and_customers_cannot_write(api, customer_api, products):
    dress = products["dress"]
    for client in (api, customer_api):
        assert client.post("/api/products/", {"sku": "N1", "name": "New"}, format="json").status_code in (401, 403)
        assert client.patch(f"/api/products/{dress.pk}/", {"name": "Hacked"}, format="json").status_code in (401, 403)
        assert client.delete(f"/api/products/{dress.pk}/").status_code in (401, 403)
        assert client.post(f"/api/products/{dress.pk}/images/", {"image": photo()}, format="multipart").status_code in (401, 403)
    dress.refresh_from_db()
    assert dress.name == "Red Dress" and Product.objects.count() == 3 and ProductImage.objects.count() == 1


@pytest.mark.django_db
def test_staff_creates_with_an_image_updates_and_deletes(staff_api, settings):
    response = staff_api.post("/api/products/", {
        "sku": "S1", "name": "Striped Shirt", "gender": "Men", "sub_category": "Topwear",
        "article_type": "Shirts", "price": "35.00", "image": photo(),
    }, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["look_category"] == "top" and body["slug"] == "striped-shirt" and body["primary_image"]
    product = Product.objects.get(sku="S1")
    assert product.images.get().is_primary and len(media_files(settings)) == 1

    response = staff_api.patch(f"/api/products/{product.pk}/", {"name": "Striped Linen Shirt", "price": "39.00"},
                               format="json")
    assert response.status_code == 200 and response.json()["slug"] == "striped-linen-shirt"

    staff_api.get(f"/api/products/{product.pk}/")
    assert staff_api.delete(f"/api/products/{product.pk}/").status_code == 204
    assert not Product.objects.filter(sku="S1").exists()


@pytest.mark.django_db
def test_staff_sees_inactive_products(staff_api, products):
    assert staff_api.get(f"/api/products/{products['hidden'].pk}/").status_code == 200


@pytest.mark.django_db
def test_staff_uploads_an_image(staff_api, products):
    tee = products["tee"]
    response = staff_api.post(f"/api/products/{tee.pk}/images/", {"image": photo("side.png", image_bytes(fmt="PNG"))},
                              format="multipart")
    assert response.status_code == 201, response.content
    image = tee.images.get()
    assert image.is_primary and image.file.name.endswith(".png") and response.json()["id"] == image.pk


@pytest.mark.django_db
@pytest.mark.parametrize("data, message", [
    (b"%PDF-1.4 not an image", "not an image"),
    (noisy_jpeg()[:3000], "truncated or corrupt"),
    (image_bytes(fmt="BMP"), "Unsupported image format BMP"),
    (image_bytes((20, 20)), "at least 32×32"),
])
def test_bad_uploads_are_refused_with_the_reason_and_nothing_is_stored(staff_api, products, settings, data, message):
    tee = products["tee"]
    files_before = media_files(settings)
    response = staff_api.post(f"/api/products/{tee.pk}/images/", {"image": photo(data=data)}, format="multipart")
    assert response.status_code == 400
    assert message in " ".join(response.json()["image"])
    assert not tee.images.exists() and media_files(settings) == files_before

    response = staff_api.post("/api/products/", {"sku": "N2", "name": "New", "image": photo(data=data)},
                              format="multipart")
    assert response.status_code == 400 and message in " ".join(response.json()["image"])
    assert not Product.objects.filter(sku="N2").exists() and media_files(settings) == files_before


@pytest.mark.django_db
def test_oversized_and_duplicate_uploads_are_refused(staff_api, products, settings):
    dress = products["dress"]
    settings.CATALOG_MAX_UPLOAD_BYTES = 200
    response = staff_api.post(f"/api/products/{dress.pk}/images/", {"image": photo()}, format="multipart")
    assert response.status_code == 400 and "the limit is 200" in response.json()["image"][0]
    settings.CATALOG_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
    existing = dress.images.get()
    response = staff_api.post(f"/api/products/{dress.pk}/images/",
                              {"image": photo(data=existing.read_bytes())}, format="multipart")
    assert response.status_code == 400 and "already attached" in response.json()["image"][0]
    assert dress.images.count() == 1


def test_the_recommender_look_url_is_not_swallowed_by_the_router():
    assert resolve("/api/products/5/").url_name == "product-detail"
    assert resolve("/api/products/5/images/").url_name == "product-images"
    assert resolve("/api/products/5/look/").url_name != "product-detail"


@pytest.mark.django_db
def test_schema_documents_the_product_endpoints(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"get", "post"} <= set(paths["/api/products/"])
    assert {"get", "put", "patch", "delete"} <= set(paths["/api/products/{id}/"])
    assert {"get", "post"} <= set(paths["/api/products/{id}/images/"])
    parameters = {p["name"] for p in paths["/api/products/"]["get"]["parameters"]}
    assert {"gender", "look_category", "article_type", "colour", "search", "page"} <= parameters
