"""The product interface: adapter configuration errors, the hooks, undescribable products, independence from catalog."""
import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.adapter import CatalogAdapter
from catalog.models import Product
from look_factories import add_article, bulk_inventory, make_analysis, make_image, make_product, random_unit
from recommender import hooks
from recommender.adapters import ProductAdapter, ProductFacts
from recommender.checks import adapter_table_mismatch, check_products, check_settings
from recommender.conf import load_adapter_class, settings as look_settings
from recommender.looks import look_for
from recommender.models import DetectedArticle, ImageAnalysis

ROOT = Path(__file__).resolve().parents[2]
ADAPTER = "catalog.adapter.CatalogAdapter"


class NoImages(ProductAdapter):
    product_model = "catalog.Product"
    image_model = "catalog.ProductImage"

    def describe(self, product):
        return ProductFacts(pk=product.pk, name=product.name)


class OtherShop(CatalogAdapter):
    """An adapter describing another image model than the one the tables were made for."""

    image_model = "auth.Group"


class Raising(CatalogAdapter):
    def describe(self, product):
        if product.name.startswith("Broken"):
            raise KeyError("colour attribute")
        return super().describe(product)


def test_the_recommender_never_imports_the_demo_catalog():
    offenders = []
    for path in (ROOT / "recommender").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"\s*(from catalog\b|import catalog\b)", line) or "import_module(\"catalog" in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


@pytest.mark.parametrize("path, message", [
    (None, r"PRODUCT_ADAPTER'\] is not set"),
    ("shop.nowhere.Adapter", r"PRODUCT_ADAPTER'\] = 'shop.nowhere.Adapter' cannot be imported"),
    ("decimal.Decimal", r"is not a subclass of recommender.adapters.ProductAdapter"),
    ("test_adapters.NoImages", r"does not define product_of, read_image, images_of, image_facts"),
])
def test_a_misconfigured_adapter_is_refused_naming_the_setting(path, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        load_adapter_class(path)


def test_adapter_options_it_does_not_take_are_a_configuration_error(settings):
    settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": ADAPTER, "ADAPTER_OPTIONS": {"colour_attribute": "colour"}}
    with pytest.raises(ImproperlyConfigured, match=r"ADAPTER_OPTIONS'\] do not suit catalog.adapter.CatalogAdapter"):
        look_settings.adapter
    assert [m.id for m in check_settings(None)] == ["recommender.E020"]


@pytest.mark.parametrize("floors", [{"hat": 0.2}, {"bag": 1.5}, {"bag": "low"}, [("bag", 0.2)]])
def test_article_floors_must_map_look_categories_to_confidences(settings, floors):
    settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": ADAPTER, "ARTICLE_FLOORS": floors}
    assert [m.id for m in check_settings(None)] == ["recommender.E005"]
    settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": ADAPTER, "ARTICLE_FLOORS": {"bag": 0.2}}
    assert check_settings(None) == [] and look_settings.floor("bag") == 0.2 and look_settings.floor("top") == 0.25


@pytest.mark.parametrize("name, value", [("EF_SEARCH", 0), ("EF_SEARCH", None), ("EF_SEARCH", "200"),
                                         ("LOOK_EF_SEARCH", 5000), ("LOOK_EF_SEARCH", True), ("LOOK_EF_SEARCH", 1.5)])
def test_ef_search_settings_must_be_whole_numbers_up_to_1000(settings, name, value):
    settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": ADAPTER, name: value}
    [error] = check_settings(None)
    assert error.id == "recommender.E006" and name in error.msg
    settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": ADAPTER, "EF_SEARCH": 120, "LOOK_EF_SEARCH": None}
    assert check_settings(None) == []


@pytest.mark.django_db
def test_check_counts_products_the_adapter_cannot_describe(settings):
    for _ in range(3):
        make_product(category="top", gender="")
    make_product(category="top", gender="Women", sku="FINE")
    settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": "test_adapters.Raising"}
    Product.objects.create(sku="BRK", name="Broken shirt")
    messages = {m.id: m.msg for m in check_products(None)}
    assert re.search(r"of 5 products checked, the adapter could not fully describe: 3 no gender \(e\.g\. \d+", messages["recommender.W020"])
    assert "raised for 1 of 5 products" in messages["recommender.W021"] and "KeyError" in messages["recommender.W021"]


@pytest.mark.django_db
def test_an_undescribable_product_is_never_recommended_and_the_look_still_renders(settings, look, rng, client):
    settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": "test_adapters.Raising"}
    broken = make_product(category="top", gender="Men")
    broken.name = "Broken top"
    broken.save()
    analysis = make_analysis(make_image(broken), full_shot=False)
    add_article(analysis, "top", look["top"].embedding, inventory=True)  # the nearest of all
    bulk_inventory([{"category": "top", "embedding": random_unit(rng)} for _ in range(8)])
    rows = {row.category: row for row in look_for(look["product"])}
    assert broken.pk not in {card.pk for card in rows["top"].recommendations}
    assert len(rows["top"].recommendations) == look_settings.K - 1  # the broken one's slot is left out
    assert client.get(look["product"].get_absolute_url()).status_code == 200


@pytest.mark.django_db
def test_a_product_of_unknown_gender_never_appears_in_a_gendered_look(look, django_capture_on_commit_callbacks):
    nobody = make_product(category="top", gender="")
    analysis = make_analysis(make_image(nobody), full_shot=False)
    with django_capture_on_commit_callbacks(execute=True):
        nobody.save()  # catalog → hooks.product_changed → the copies follow the adapter's facts
    article = add_article(analysis, "top", look["top"].embedding, inventory=True, gender="")
    assert article.gender == ""
    rows = {row.category: row for row in look_for(look["product"])}
    assert nobody.pk not in {card.pk for card in rows["top"].recommendations}


@pytest.mark.django_db
def test_hooks_image_removed_and_product_removed(look, rng):
    shirt = make_product(category="top", gender="Men")
    image = make_image(shirt)
    analysis = make_analysis(image, full_shot=False)
    add_article(analysis, "top", look["top"].embedding, inventory=True)
    assert shirt.pk in {card.pk for card in look_for(look["product"])[0].recommendations}
    hooks.product_removed(shirt)
    assert not DetectedArticle.objects.filter(product=shirt, is_active=True).exists()
    assert shirt.pk not in {card.pk for row in look_for(look["product"]) for card in row.recommendations}
    hooks.product_changed(shirt)  # still sold after all: back in the looks
    assert DetectedArticle.objects.get(product=shirt).is_active
    hooks.image_removed(image)
    assert not ImageAnalysis.objects.filter(image=image).exists()
    assert not DetectedArticle.objects.filter(product=shirt).exists()


@pytest.mark.django_db
def test_deleting_an_image_deletes_its_vectors_in_the_same_transaction(look):
    image = look["image"]
    assert DetectedArticle.objects.filter(analysis__image=image).exists()
    image.delete()
    assert not ImageAnalysis.objects.filter(image_id=image.pk).exists()
    assert not DetectedArticle.objects.filter(analysis_id=look["analysis"].pk).exists()


@pytest.mark.django_db
def test_switching_adapters_on_a_database_with_vectors_is_explained(settings):
    assert adapter_table_mismatch() == ""
    settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": "test_adapters.OtherShop"}
    explanation = adapter_table_mismatch()
    assert "point at table catalog_productimage" in explanation and "auth.Group" in explanation
    assert "manage.py migrate recommender zero" in explanation
    with pytest.raises(CommandError, match="migrate recommender zero"):
        call_command("reindex", "--dry-run")
    assert "recommender.E021" in {m.id for m in check_products(None)}
