"""The recommender's REST API: permissions matrix, look parameters, search validation, schema."""
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from look_factories import bulk_inventory, make_analysis, make_image, make_product, random_unit

pytestmark = pytest.mark.django_db

NOT_AN_IMAGE = b"just some text, not a photo\n" * 10


@pytest.fixture
def clients(db):
    User = get_user_model()
    user = User.objects.create_user("shopper", password="pw-shopper-1")
    staff = User.objects.create_user("manager", password="pw-manager-1", is_staff=True)
    anonymous = APIClient()
    logged_in = APIClient()
    logged_in.force_login(user)
    staff_session = APIClient(enforce_csrf_checks=False)
    staff_session.force_login(staff)
    staff_token = APIClient()
    staff_token.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    user_token = APIClient()
    user_token.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return {"anonymous": anonymous, "user": logged_in, "user-token": user_token, "staff": staff_session,
            "staff-token": staff_token}


@pytest.fixture
def stocked(look, rng):
    bulk_inventory([{"category": c, "embedding": random_unit(rng), "colour": colour}
                    for c in ("top", "footwear") for colour in ("Blue", "Black", "Red") for _ in range(4)])
    return look


def broken_image():
    product = make_product(category="top")
    return make_image(product, content=NOT_AN_IMAGE)


READS = ["anonymous", "user", "user-token", "staff", "staff-token"]


@pytest.mark.parametrize("who", READS)
def test_everyone_reads_looks_and_analyses(clients, stocked, who):
    client = clients[who]
    response = client.get(f"/api/products/{stocked['product'].pk}/look/")
    assert response.status_code == 200
    assert [row["category"] for row in response.json()["rows"]] == ["top", "footwear"]
    response = client.get(f"/api/images/{stocked['image'].pk}/analysis/")
    assert response.status_code == 200 and response.json()["status"] == "done"


@pytest.mark.parametrize("who,expected", [("anonymous", 403), ("user", 403), ("user-token", 403),
                                          ("staff", 202), ("staff-token", 202)])
def test_only_staff_asks_for_a_new_analysis(clients, who, expected):
    image = broken_image()  # analysing it fails fast, without loading models
    response = clients[who].post(f"/api/images/{image.pk}/analysis/")
    assert response.status_code == expected
    from recommender.models import ImageAnalysis

    analysis = ImageAnalysis.objects.filter(image=image).first()
    if expected == 202:
        body = response.json()
        assert body["status"] == "failed" and "not an image" in body["error"]  # eager: ran right away
        assert analysis.attempts == 1
    else:
        assert analysis is None


def test_staff_session_writes_need_the_csrf_token(db):
    from django.test import Client

    staff = get_user_model().objects.create_user("boss", password="pw-boss-12", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    image = broken_image()
    assert client.post(f"/api/images/{image.pk}/analysis/").status_code == 403


@pytest.mark.parametrize("who", ["anonymous", "user", "staff"])
def test_search_is_public_and_explains_a_bad_photo(clients, who):
    upload = SimpleUploadedFile("notes.jpg", NOT_AN_IMAGE, content_type="image/jpeg")
    response = clients[who].post("/api/search/", {"image": upload}, format="multipart")
    assert response.status_code == 400
    assert "notes.jpg" in response.json()["image"][0] and "not an image" in response.json()["image"][0]


def test_search_refuses_big_and_empty_files(clients, settings):
    settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": "catalog.adapter.CatalogAdapter", "SEARCH_MAX_UPLOAD_BYTES": 1000}
    client = clients["anonymous"]
    big = SimpleUploadedFile("big.png", b"\x89PNG" + b"0" * 5000, content_type="image/png")
    response = client.post("/api/search/", {"image": big}, format="multipart")
    assert response.status_code == 400 and "at most 1000 bytes" not in response.json()["image"][0]
    assert "big.png is 5 KB; photos may be at most 1 KB" in response.json()["image"][0]
    empty = SimpleUploadedFile("empty.jpg", b"", content_type="image/jpeg")
    response = client.post("/api/search/", {"image": empty}, format="multipart")
    assert response.status_code == 400
    response = client.post("/api/search/", {}, format="multipart")
    assert response.status_code == 400 and "image" in response.json()
    response = client.post("/api/search/", {"image": SimpleUploadedFile("a.jpg", NOT_AN_IMAGE), "gender": "Aliens"},
                           format="multipart")
    assert response.status_code == 400 and "gender" in response.json()


def test_search_is_throttled(clients, settings):
    from rest_framework.settings import api_settings  # noqa: F401
    from rest_framework.throttling import ScopedRateThrottle

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "throttle"}}
    original = ScopedRateThrottle.THROTTLE_RATES
    ScopedRateThrottle.THROTTLE_RATES = {**original, "search": "3/minute"}
    try:
        client = clients["anonymous"]
        codes = [client.post("/api/search/", {"image": SimpleUploadedFile("x.jpg", NOT_AN_IMAGE)},
                             format="multipart").status_code for _ in range(5)]
    finally:
        ScopedRateThrottle.THROTTLE_RATES = original
    assert codes == [400, 400, 400, 429, 429]


def test_look_parameters(clients, stocked):
    client = clients["anonymous"]
    pk = stocked["product"].pk
    body = client.get(f"/api/products/{pk}/look/", {"k": 3, "colour": "red"}).json()
    assert body["k"] == 3
    for row in body["rows"]:
        assert len(row["recommendations"]) == 3
        assert {card["colour"] for card in row["recommendations"]} == {"red"}
        card = row["recommendations"][0]
        assert set(card) >= {"id", "reference", "name", "url", "image", "price", "currency", "distance"}
        assert card["url"].startswith("http://testserver/")
        assert set(row["article"]["box"]) == {"x1", "y1", "x2", "y2"}
    footwear = body["rows"][1]
    assert len(footwear["boxes"]) == 2
    body = client.get(f"/api/products/{pk}/look/?exclude_colour=red,blue&exclude_colour=black").json()
    assert all(row["recommendations"] == [] for row in body["rows"])
    response = client.get(f"/api/products/{pk}/look/", {"k": 1000})
    assert response.status_code == 400 and "k must be between 1 and 24" in response.json()["detail"]
    response = client.get(f"/api/products/{pk}/look/", {"min_price": "cheap"})
    assert response.status_code == 400 and "min_price" in response.json()["detail"]


def test_unknown_and_inactive_products_are_404(clients, stocked):
    assert clients["anonymous"].get("/api/products/999999/look/").status_code == 404
    assert clients["anonymous"].get("/api/images/999999/analysis/").status_code == 404
    hidden = make_product(category="", outfit=True, active=False)
    assert clients["anonymous"].get(f"/api/products/{hidden.pk}/look/").status_code == 404
    assert clients["staff"].get(f"/api/products/{hidden.pk}/look/").status_code == 200


def test_analysis_payload(clients, stocked):
    body = clients["anonymous"].get(f"/api/images/{stocked['image'].pk}/analysis/").json()
    assert body["is_full_shot"] is True and body["timings"]["total"] == 70.0
    assert body["product"] == stocked["product"].pk
    assert sorted(a["category"] for a in body["articles"]) == ["bag", "footwear", "footwear", "top"]
    assert "embedding" not in body["articles"][0]
    unanalysed = make_image(make_product(category="top"))
    assert clients["anonymous"].get(f"/api/images/{unanalysed.pk}/analysis/").json()["status"] == "none"


def test_schema_is_served_and_validates(clients):
    response = clients["anonymous"].get("/api/schema/")
    assert response.status_code == 200
    text = response.content.decode()
    for path in ("/api/products/{id}/look/", "/api/search/", "/api/images/{id}/analysis/"):
        assert path in text
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null", stdout=out, stderr=out)
