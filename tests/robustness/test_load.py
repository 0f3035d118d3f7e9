"""Load on loopback, bounded in count: 50 simultaneous API uploads and 200 simultaneous product-page requests
against the live server (threads) → every request succeeds, every image is analysed exactly once, counts match.

The pipeline is the weightless test one (``robust_parts``): what is under load here is the web, database and
task path, not the models (their speed is measured by ``python -m bench``)."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from catalog.models import Product, ProductImage
from recommender.models import DetectedArticle, ImageAnalysis
from robust_inputs import jpeg, media_files

UPLOADS = 50
PRODUCTS = 10
PAGE_REQUESTS = 200


def simultaneously(count, job):
    """Run ``job(i)`` for i in range(count) on ``count`` threads released together; returns the results."""
    barrier = threading.Barrier(count)

    def run(index):
        barrier.wait(timeout=120)
        return job(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


@pytest.mark.slow
def test_parallel_uploads_and_page_views(live_server, fake_pipeline, settings):
    staff = get_user_model().objects.create_user("load-staff", password="pw-load-1", is_staff=True)
    token = Token.objects.create(user=staff).key
    products = [Product.objects.create(sku=f"LOAD-{n}", name=f"Load top {n}", gender="Women",
                                       master_category="Apparel", sub_category="Topwear", article_type="Tops",
                                       base_colour="Black", price="15") for n in range(PRODUCTS)]
    looks = [Product.objects.create(sku=f"LOOK-{n}", name=f"Load look {n}", gender="Women",
                                    master_category="Outfit", price="0") for n in range(2)]
    targets = products * (UPLOADS // PRODUCTS)

    def upload(index):
        product = (looks + products)[index] if index < 2 else targets[index]
        response = requests.post(
            f"{live_server.url}/api/products/{product.pk}/images/",
            files={"image": (f"photo-{index}.jpg", jpeg((120, 200), seed=index), "image/jpeg")},
            headers={"Authorization": f"Token {token}"}, timeout=300,
        )
        return response.status_code, response.text[:300]

    def upload_safely(index):
        try:
            return upload(index)
        except Exception as error:
            return "error", repr(error)

    results = simultaneously(UPLOADS, upload_safely)
    assert [code for code, _ in results] == [201] * UPLOADS, [r for r in results if r[0] != 201][:5]
    assert ProductImage.objects.count() == UPLOADS
    assert len(media_files(settings.MEDIA_ROOT)) == UPLOADS
    analyses = ImageAnalysis.objects.all()
    assert analyses.count() == UPLOADS
    assert set(analyses.values_list("status", "attempts")) == {("done", 1)}  # each analysed once
    assert DetectedArticle.objects.count() == 2 * UPLOADS  # top and footwear per photo, no duplicates
    assert DetectedArticle.objects.filter(is_inventory=True).count() == UPLOADS - 2  # looks are not inventory
    for product in products + looks:  # concurrent first uploads still leave exactly one primary image
        assert product.images.filter(is_primary=True).count() == 1, product.sku

    pages = [look.get_absolute_url() for look in looks] + [p.get_absolute_url() for p in products[:3]]

    def view(index):
        response = requests.get(live_server.url + pages[index % len(pages)], timeout=300)
        return response.status_code, "btl__row" in response.text

    results = simultaneously(PAGE_REQUESTS, view)
    assert [code for code, _ in results] == [200] * PAGE_REQUESTS, sorted(set(results))
    look_pages = [has_rows for index, (_, has_rows) in enumerate(results) if index % len(pages) < len(looks)]
    assert len(look_pages) == PAGE_REQUESTS * 2 // len(pages) and all(look_pages)  # the widget's rows every time


@pytest.mark.slow
def test_the_same_photo_uploaded_ten_times_at_once_is_stored_once(live_server, fake_pipeline, settings):
    staff = get_user_model().objects.create_user("dup-staff", password="pw-dup-1", is_staff=True)
    token = Token.objects.create(user=staff).key
    product = Product.objects.create(sku="DUP-1", name="Dup top", gender="Men", sub_category="Topwear", price="9")
    data = jpeg((120, 200), seed=99)

    def upload(index):
        response = requests.post(f"{live_server.url}/api/products/{product.pk}/images/",
                                 files={"image": ("same.jpg", data, "image/jpeg")},
                                 headers={"Authorization": f"Token {token}"}, timeout=300)
        return response.status_code, response.text

    results = simultaneously(10, upload)
    codes = sorted(code for code, _ in results)
    assert codes == [201] + [400] * 9, results
    assert all("already attached" in text for code, text in results if code == 400)
    assert product.images.count() == 1 and product.images.get().is_primary
    assert len(media_files(settings.MEDIA_ROOT)) == 1  # the refused copies left no file behind
    assert ImageAnalysis.objects.get().attempts == 1
