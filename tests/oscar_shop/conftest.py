"""Fixtures of the Oscar test shop (run with ``--ds=tests.oscar_shop.settings``; see settings.py)."""
import os

import pytest

import tests.oscar_shop.celery_app  # noqa: F401  (the shop's Celery app, as <project>/__init__.py imports it)

# Playwright's sync API runs an event loop in this thread; the tests' ORM calls stay synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session", autouse=True)
def _media_root(tmp_path_factory):
    """One MEDIA_ROOT for the run (the module-wide shop's images outlive single tests)."""
    from django.conf import settings

    settings.MEDIA_ROOT = str(tmp_path_factory.mktemp("oscar-media"))
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def _fresh_cache():
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(scope="module")
def built_shop(django_db_setup, django_db_blocker):
    """The test shop's catalogue (``oscar_factories.build_shop``), built and analysed (eagerly) once per
    module and committed: ``(catalogue, {name: product pk})``."""
    from oscar_factories import Category, Partner, Product, ProductClass, build_shop

    with django_db_blocker.unblock():
        catalogue, items = build_shop()
        yield catalogue, {name: product.pk for name, product in items.items()}
        Product.objects.all().delete()
        Category.objects.all().delete()
        ProductClass.objects.all().delete()
        Partner.objects.all().delete()


@pytest.fixture
def shop(built_shop, db):
    """``{name: Product}`` of the module's shop, fresh instances for this test (which runs in a transaction
    rolled back after it), and ``"catalogue"``: the ``Catalogue`` builder."""
    from oscar_factories import Product

    catalogue, pks = built_shop
    products = Product.objects.in_bulk(pks.values())
    return {"catalogue": catalogue, **{name: products[pk] for name, pk in pks.items()}}
