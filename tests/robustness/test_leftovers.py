"""What is left behind when things change or break: replaced and deleted images, a failing model during a
visitor's search, failing batches of ``manage.py analyse``."""
import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.test import APIClient

from catalog.models import Product, ProductImage
from recommender import pipeline
from recommender.models import ImageAnalysis
from robust_inputs import TEXT, jpeg, media_files
from robust_parts import FAKE_PIPELINE, FailingDetector

pytestmark = pytest.mark.django_db


def product_with_image(sku="LEFT-1", content=None, **fields):
    values = dict(name=f"Product {sku}", gender="Women", master_category="Apparel", sub_category="Topwear",
                  article_type="Tops", price="12")
    values.update(fields)
    product = Product.objects.create(sku=sku, **values)
    image = ProductImage(product=product, is_primary=True)
    image.file = ContentFile(content or jpeg(seed=len(sku)), name="a.jpg")
    image.save()
    return product, image


@pytest.fixture
def failing_pipeline(settings):
    settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": "catalog.adapter.CatalogAdapter", "PIPELINE": {**FAKE_PIPELINE, "detector": "robust_parts.FailingDetector"}}
    pipeline.reset()
    yield
    pipeline.reset()


@pytest.mark.parametrize("door", ["api", "page"])
def test_a_broken_model_during_a_search_is_a_503_not_a_500(failing_pipeline, door):
    client = APIClient()
    photo = SimpleUploadedFile("look.jpg", jpeg((120, 200)), content_type="image/jpeg")
    if door == "api":
        response = client.post("/api/search/", {"image": photo}, format="multipart")
        assert response.status_code == 503, response.content[:500]
        assert "try again" in response.json()["detail"]
        assert FailingDetector.MESSAGE not in response.json()["detail"]  # internals stay in the log
    else:
        response = client.post("/search/", {"photo": photo})
        assert response.status_code == 503 and "try again later" in response.content.decode()


def test_replacing_an_image_in_the_admin_removes_the_old_file(admin_client, settings, fake_pipeline,
                                                             django_capture_on_commit_callbacks):
    product, image = product_with_image()
    old_name = image.file.name
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/catalog/productimage/{image.pk}/change/", {
            "product": product.pk, "file": SimpleUploadedFile("new.jpg", jpeg(seed=77), content_type="image/jpeg"),
            "position": 0, "is_primary": "on"})
    assert response.status_code == 302
    image.refresh_from_db()
    assert image.file.name != old_name and image.read_bytes() == jpeg(seed=77)
    assert media_files(settings.MEDIA_ROOT) == [image.file.name], "the replaced file was left behind"


def test_a_refused_replacement_keeps_the_old_file(admin_client, settings):
    product, image = product_with_image()
    before = media_files(settings.MEDIA_ROOT)
    response = admin_client.post(f"/admin/catalog/productimage/{image.pk}/change/", {
        "product": product.pk, "file": SimpleUploadedFile("bad.jpg", TEXT, content_type="image/jpeg"),
        "position": 0, "is_primary": "on"})
    assert response.status_code == 200 and "not an image" in response.content.decode()
    image.refresh_from_db()
    assert media_files(settings.MEDIA_ROOT) == before and image.read_bytes() == jpeg(seed=len("LEFT-1"))


def test_deleting_a_product_through_the_api_deletes_its_files(settings, fake_pipeline, django_capture_on_commit_callbacks):
    from django.contrib.auth import get_user_model

    product, _ = product_with_image()
    extra = ProductImage(product=product, position=1)
    extra.file = ContentFile(jpeg(seed=55), name="b.jpg")
    extra.save()
    keep, _ = product_with_image("KEEP-1")
    assert len(media_files(settings.MEDIA_ROOT)) == 3
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_user("del", is_staff=True))
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/api/products/{product.pk}/").status_code == 204
    assert media_files(settings.MEDIA_ROOT) == [keep.images.get().file.name]
    assert not ImageAnalysis.objects.filter(image__product_id=product.pk).exists()


def test_a_product_form_error_in_the_admin_stores_no_image(admin_client, settings):
    product_with_image("TAKEN-1")
    before = (media_files(settings.MEDIA_ROOT), Product.objects.count(), ProductImage.objects.count())
    response = admin_client.post("/admin/catalog/product/add/", {
        "sku": "TAKEN-1", "name": "Same SKU", "price": "3", "is_active": "on", "gender": "Women",
        "images-TOTAL_FORMS": "1", "images-INITIAL_FORMS": "0", "images-MIN_NUM_FORMS": "0",
        "images-MAX_NUM_FORMS": "1000", "images-0-position": "0",
        "images-0-file": SimpleUploadedFile("ok.jpg", jpeg(seed=31), content_type="image/jpeg"),
    })
    assert response.status_code == 200 and "already exists" in response.content.decode()
    assert (media_files(settings.MEDIA_ROOT), Product.objects.count(), ProductImage.objects.count()) == before


def test_a_failing_batch_in_manage_analyse_fails_each_image_with_its_message_and_can_be_rerun(settings):
    from recommender.hooks import defer_analysis

    with defer_analysis():
        images = [product_with_image(f"BATCH-{n}")[1] for n in range(3)]
        look = product_with_image("BATCH-LOOK", master_category="Outfit", sub_category="", article_type="")[1]
    settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": "catalog.adapter.CatalogAdapter", "PIPELINE": {**FAKE_PIPELINE, "detector": "robust_parts.FailingDetector",
                                          "embedder": "robust_parts.FailingEmbedder"}}
    pipeline.reset()
    try:
        out = io.StringIO()
        call_command("analyse", "--pending", "--no-progress", stdout=out, stderr=out)
        statuses = dict(ImageAnalysis.objects.values_list("image_id", "status"))
        assert statuses == {image.pk: "failed" for image in [*images, look]}, out.getvalue()
        for analysis in ImageAnalysis.objects.all():
            assert analysis.error.startswith("pipeline error: RuntimeError:") and "injected" in analysis.error
        assert "4 failed" in out.getvalue()
        settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": "catalog.adapter.CatalogAdapter", "PIPELINE": dict(FAKE_PIPELINE)}
        pipeline.reset()
        out = io.StringIO()
        call_command("analyse", "--failed", "--no-progress", stdout=out, stderr=out)
        assert set(ImageAnalysis.objects.values_list("status", flat=True)) == {"done"}, out.getvalue()
        assert set(ImageAnalysis.objects.values_list("attempts", flat=True)) == {2}
    finally:
        pipeline.reset()


@pytest.mark.django_db(transaction=True)
def test_vectors_are_derived_data_reindex_rebuilds_an_emptied_article_table(fake_pipeline):
    """Backups need the database's shop rows and the media files; the vectors can be rebuilt: empty the article
    table of an analysed shop, run reindex, and the same look rows come back."""
    from PIL import Image

    from recommender.looks import look_for
    from recommender.models import DetectedArticle

    def photo(seed, size):
        buffer = io.BytesIO()
        Image.new("RGB", size, (seed * 37 % 255, seed * 91 % 255, 120)).save(buffer, format="PNG")
        return ContentFile(buffer.getvalue(), name=f"p{seed}.png")

    outfit = Product.objects.create(sku="LOOK-1", name="Look", gender="", master_category="Outfit")
    ProductImage.objects.create(product=outfit, file=photo(7, (300, 600)), is_primary=True)
    for seed, sub_category in enumerate(["Topwear", "Topwear", "Shoes", "Shoes"]):
        product = Product.objects.create(sku=f"P{seed}", name=f"P{seed}", gender="Women", sub_category=sub_category)
        ProductImage.objects.create(product=product, file=photo(20 + seed, (200, 260)), is_primary=True)

    def rows():
        return [(row.category, [card.pk for card in row.recommendations]) for row in look_for(outfit)]

    before = rows()
    assert before and all(cards for _, cards in before)
    articles = DetectedArticle.objects.count()
    DetectedArticle.objects.all().delete()
    assert rows() == []
    call_command("reindex", "--no-progress")
    assert DetectedArticle.objects.count() == articles
    assert rows() == before


def test_warm_up_loads_the_parts_once_and_can_be_turned_off(fake_pipeline, settings):
    from recommender import warmup

    warmup._done.clear()
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "WARM_UP": False}
    assert warmup.start() is None and not warmup.is_warm()
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "WARM_UP": True}
    thread = warmup.start()
    thread.join(timeout=60)
    assert warmup.is_warm()
    assert warmup.warm_up() == 0.0  # once per process
    assert pipeline.get_parts().embedder.version == "test-embedder-1"
    warmup._done.clear()
