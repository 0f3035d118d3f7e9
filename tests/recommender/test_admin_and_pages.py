"""Admin of analyses and product images; the search-by-photo page."""
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from look_factories import make_image, make_product

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(user)
    return client


def test_analysis_admin_lists_filters_and_draws_boxes(admin_client, look):
    failed = make_image(make_product(category="top"), content=b"not an image at all" * 10)
    from recommender.tasks import analyse_image

    analyse_image.delay(failed.pk)
    response = admin_client.get("/admin/recommender/imageanalysis/")
    assert response.status_code == 200
    html = response.content.decode()
    assert ">done<" in html and ">failed<" in html
    response = admin_client.get("/admin/recommender/imageanalysis/?status__exact=failed")
    assert response.status_code == 200 and ">done<" not in response.content.decode()
    response = admin_client.get(f"/admin/recommender/imageanalysis/{look['analysis'].pk}/change/")
    html = response.content.decode()
    assert response.status_code == 200
    assert len(re.findall(r'class="btl__box" data-category=', html)) == 4
    assert "Footwear 0.80" in html
    assert not re.search(r'name="[^"]*embedding', html)  # vectors stay out of admin forms
    assert not re.search(r"\[-?0\.\d+, ?-?0\.\d+, ?-?0\.\d+", html)  # and are not printed


def test_reanalyse_action(admin_client):
    image = make_image(make_product(category="top"), content=b"text, not pixels" * 10)
    from recommender.models import ImageAnalysis
    from recommender.tasks import analyse_image

    analyse_image.delay(image.pk)
    analysis = ImageAnalysis.objects.get(image=image)
    response = admin_client.post("/admin/recommender/imageanalysis/",
                                 {"action": "reanalyse", "_selected_action": [analysis.pk]}, follow=True)
    assert response.status_code == 200 and "1 image(s) sent for analysis" in response.content.decode()
    analysis.refresh_from_db()
    assert analysis.attempts == 2


def test_product_image_admin_shows_the_analysis(admin_client, look):
    response = admin_client.get("/admin/catalog/productimage/")
    assert response.status_code == 200 and ">done<" in response.content.decode()
    response = admin_client.get("/admin/catalog/productimage/?analysis_status=none")
    assert response.status_code == 200
    response = admin_client.get(f"/admin/catalog/productimage/{look['image'].pk}/change/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Look analysis" in html and "btl__box" in html and "Men (from product data)" in html
    assert "70 ms" in html


def test_search_page_form_and_errors(client):
    response = client.get("/search/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'enctype="multipart/form-data"' in html and "csrfmiddlewaretoken" in html
    assert "Detect automatically" in html and "Footwear" in html
    upload = SimpleUploadedFile("holiday.jpg", b"plain text pretending to be a photo" * 5, content_type="image/jpeg")
    response = client.post("/search/", {"photo": upload, "gender": ""})
    assert response.status_code == 400
    assert "holiday.jpg: not an image (cannot identify format)." in response.content.decode()


def test_search_page_refuses_oversized_photos(client, settings):
    settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": "catalog.adapter.CatalogAdapter", "SEARCH_MAX_UPLOAD_BYTES": 2048}
    upload = SimpleUploadedFile("huge.png", b"\x89PNG" + b"1" * 10_000, content_type="image/png")
    response = client.post("/search/", {"photo": upload})
    assert response.status_code == 400 and "huge.png is 10 KB; photos may be at most 2 KB" in response.content.decode()


def test_search_page_needs_csrf(db):
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post("/search/", {})
    assert response.status_code == 403


def test_product_admin_image_inline_shows_the_analysis(admin_client, look):
    response = admin_client.get(f"/admin/catalog/product/{look['product'].pk}/change/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "look analysis" in html.lower() and ">done<" in html and "full shot, 4 article(s)" in html


def test_product_page_shows_the_widget_rows(client, look, rng):
    from look_factories import bulk_inventory, random_unit

    bulk_inventory([{"category": c, "embedding": random_unit(rng)} for c in ("top", "footwear") for _ in range(8)])
    response = client.get(look["product"].get_absolute_url())
    html = response.content.decode()
    assert response.status_code == 200
    assert re.findall(r'class="btl__row" id="btl-row-[^"]+" data-btl-key="[^"]+" data-category="(\w+)"', html) == ["top", "footwear"]
    assert html.count('class="btl__card"') == 12
    shirt = make_product(category="top")
    assert 'class="btl__row"' not in client.get(shirt.get_absolute_url()).content.decode()
