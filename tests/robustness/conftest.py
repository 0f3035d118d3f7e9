"""Fixtures of the robustness tests: a private MEDIA_ROOT, clients, a weightless pipeline (test parts)."""
import pytest

from robust_parts import FAKE_PIPELINE


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    cache.clear()
    # Many uploads per test: lift the search throttle (its own test lowers it again).
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES,
                                                                 "search": "100000/minute"})


@pytest.fixture
def fake_pipeline(settings):
    """``BUY_THE_LOOK["PIPELINE"]`` pointed at the weightless test parts of ``robust_parts``."""
    from recommender import pipeline

    settings.BUY_THE_LOOK = {**getattr(settings, "BUY_THE_LOOK", {}), "PIPELINE": dict(FAKE_PIPELINE)}
    pipeline.reset()
    yield settings.BUY_THE_LOOK
    pipeline.reset()


@pytest.fixture
def staff_user(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("robust-staff", password="pw-robust-staff-1", is_staff=True,
                                                is_superuser=True)


@pytest.fixture
def staff_api(staff_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(staff_user)
    return client


@pytest.fixture
def product(db):
    from catalog.models import Product

    return Product.objects.create(sku="ROBUST-1", name="Robust Top", gender="Women", master_category="Apparel",
                                  sub_category="Topwear", article_type="Tops", base_colour="Black", price="19.00")
