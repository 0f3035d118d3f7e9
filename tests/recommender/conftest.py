"""Fixtures of the recommender tests (factories live in look_factories.py)."""
import numpy as np
import pytest

from look_factories import add_article, make_analysis, make_image, make_product, png_bytes, random_unit


@pytest.fixture(autouse=True)
def _media_and_cache(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def rng():
    return np.random.default_rng(20261126)


@pytest.fixture
def look(db, rng):
    """A men's outfit product with a full-shot analysis: a top and a footwear article (and a weak bag)."""
    product = make_product(category="", gender="Men", outfit=True, colour="")
    image = make_image(product, content=png_bytes(300, 600, seed=1))
    analysis = make_analysis(image, full_shot=True)
    top = add_article(analysis, "top", random_unit(rng), box=(0.25, 0.15, 0.75, 0.5))
    shoe = add_article(analysis, "footwear", random_unit(rng), box=(0.3, 0.85, 0.45, 0.98), confidence=0.8)
    add_article(analysis, "footwear", shoe.embedding, box=(0.55, 0.85, 0.7, 0.98), confidence=0.7)
    add_article(analysis, "bag", random_unit(rng), box=(0.7, 0.4, 0.9, 0.6), confidence=0.05)
    return {"product": product, "image": image, "analysis": analysis, "top": top, "shoe": shoe}
