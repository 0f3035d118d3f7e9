"""The shared cache (Redis, ``CACHE_URL``) going down must not take the shop with it: product pages still show
the widget (uncached), saves still succeed, search by photo still answers (its throttle fails open)."""
import logging

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from catalog.models import Product, ProductImage
from recommender.models import ImageAnalysis
from robust_inputs import jpeg

DEAD_REDIS = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": "redis://127.0.0.1:1/0"}}  # nothing listens on port 1


def image_of(product, seed):
    image = ProductImage(product=product, is_primary=True)
    image.file = ContentFile(jpeg((120, 200), seed=seed), name="p.jpg")
    image.save()
    return image


@pytest.fixture
def look_with_stock(fake_pipeline, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for number in range(6):
            sub, article = ("Topwear", "Tops") if number % 2 else ("Shoes", "Casual Shoes")
            product = Product.objects.create(sku=f"CD-{number}", name=f"Cache {article} {number}", gender="Women",
                                             master_category="Apparel", sub_category=sub, article_type=article,
                                             price="10")
            image_of(product, number + 1)
        look = Product.objects.create(sku="CD-LOOK", name="Cache look", gender="Women", master_category="Outfit",
                                      price="0")
        image_of(look, 50)
    assert ImageAnalysis.objects.get(image__product=look).status == "done"
    return look


@pytest.mark.django_db
def test_the_shop_keeps_working_with_its_cache_down(look_with_stock, settings, caplog,
                                                    django_capture_on_commit_callbacks):
    settings.CACHES = DEAD_REDIS
    from django.core.cache import cache

    with pytest.raises(Exception):
        cache.get("probe")  # really down

    with caplog.at_level(logging.WARNING):
        page = APIClient().get(look_with_stock.get_absolute_url())
        assert page.status_code == 200
        assert page.content.decode().count('class="btl__row"') == 2  # rendered without the cache

        staff = APIClient()
        staff.force_authenticate(get_user_model().objects.create_user("cache-staff", is_staff=True))
        with django_capture_on_commit_callbacks(execute=True):
            response = staff.patch(f"/api/products/{look_with_stock.pk}/", {"name": "Renamed look"}, format="json")
        assert response.status_code == 200
        with django_capture_on_commit_callbacks(execute=True):
            response = staff.post(f"/api/products/{look_with_stock.pk}/images/",
                                  {"image": SimpleUploadedFile("n.jpg", jpeg(seed=77), content_type="image/jpeg")},
                                  format="multipart")
        assert response.status_code == 201
        assert ImageAnalysis.objects.get(image_id=response.json()["id"]).status == "done"

        search = APIClient().post("/api/search/", {"image": SimpleUploadedFile("s.jpg", jpeg(seed=3))},
                                  format="multipart")
        assert search.status_code == 200, search.content[:300]
        page_search = APIClient().post("/search/", {"photo": SimpleUploadedFile("s.jpg", jpeg(seed=3))})
        assert page_search.status_code == 200
    assert any("cache" in record.getMessage().lower() for record in caplog.records if record.levelno >= logging.WARNING)
