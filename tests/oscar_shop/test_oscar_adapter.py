"""``recommender.adapters.oscar.OscarAdapter``: what it reads from Oscar's models, and its ready-made receivers.
(No analysis runs here: the tests' transactions never commit, so the receivers' after-commit calls only run
where a test asks for them with ``django_capture_on_commit_callbacks``.)"""
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models.signals import post_save
from django.test.utils import CaptureQueriesContext

from oscar_factories import (TSHIRT, AttributeOption, AttributeOptionGroup, Catalogue, ProductAttribute,
                             ProductImage, StockRecord, add_image)
from recommender.adapters.oscar import OscarAdapter
from recommender.conf import settings as look_settings

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def catalogue():
    return Catalogue()


@pytest.fixture
def adapter():
    return look_settings.adapter


@pytest.fixture
def calls(monkeypatch):
    """What the receivers told ``recommender.hooks``: ``[(hook name, pk)]``."""
    from recommender import hooks

    seen = []
    for name in ("image_changed", "image_removed", "product_changed", "product_removed"):
        monkeypatch.setattr(hooks, name, lambda obj, name=name: seen.append((name, getattr(obj, "pk", obj))))
    return seen


def test_the_configured_adapter_is_the_oscar_adapter(adapter):
    assert isinstance(adapter, OscarAdapter)
    assert adapter.product_model == "catalogue.Product" and adapter.image_model == "catalogue.ProductImage"
    from recommender.models import DetectedArticle, ImageAnalysis

    # the recommender's tables point at Oscar's (swappable dependency, like AUTH_USER_MODEL)
    assert ImageAnalysis._meta.get_field("image").related_model._meta.label == "catalogue.ProductImage"
    assert DetectedArticle._meta.get_field("product").related_model._meta.label == "catalogue.Product"


def test_facts_come_from_oscar_attributes_strategy_and_images(catalogue, adapter):
    tee = catalogue.product("Linen shirt", "T-shirts", gender="Women", colour="Navy Blue / White", price="35.50",
                            stock=4, categories=["Clothing > Tops"], upc="LIN-1", photo=TSHIRT)
    facts = adapter.describe(tee)
    assert (facts.pk, facts.name, facts.reference) == (tee.pk, "Linen shirt", "LIN-1")
    assert facts.url == tee.get_absolute_url() == f"/catalogue/linen-shirt_{tee.pk}/"
    assert (facts.gender, facts.look_category, facts.article_type) == ("Women", "top", "T-shirts")
    assert facts.colours == ("navy blue", "white") and facts.colour == "navy blue"
    assert (facts.price, facts.currency, facts.is_available) == (Decimal("35.50"), "EUR", True)
    assert facts.image_url == tee.primary_image().original.url and facts.problems == ()
    assert facts.is_recommendable

    record = StockRecord.objects.get(product=tee)
    record.num_in_stock = 0
    record.save()
    assert not adapter.describe(tee).is_available  # Oscar's StockRequired availability
    record.delete()
    facts = adapter.describe(tee)
    assert facts.price is None and not facts.is_available and "no price" in facts.problems


def test_look_category_mapping_by_class_name_slug_and_category(catalogue, monkeypatch):
    adapter = OscarAdapter(look_categories={
        "t-shirts": "top", "sandals-co": "footwear", "clothing/bottoms": "bottom", "Clothing > Knitwear": "top",
        "Bags": "bag", "Gift cards": "", "Clothing > Dresses": "dress", "Summer": "top",
    })

    def look(product):
        return adapter.describe(product).look_category

    assert look(catalogue.product("a", "T-shirts")) == "top"                    # class name, any case
    assert look(catalogue.product("b", "Sandals & co")) == "footwear"           # class slug
    assert look(catalogue.product("c", "Misc", categories=["Clothing > Bottoms"])) == "bottom"  # full slug
    assert look(catalogue.product("d", "Misc", categories=["Clothing > Knitwear"])) == "top"    # full name
    assert look(catalogue.product("e", "Misc", categories=["Accessories > Bags > Leather"])) == "bag"  # ancestor
    assert look(catalogue.product("f", "T-shirts", categories=["Clothing > Bottoms"])) == "top"  # class first
    # the deepest mapped category wins; a tie between different look categories means none
    assert look(catalogue.product("g", "Misc", categories=["Clothing > Dresses", "Summer"])) == "dress"
    tied = adapter.describe(catalogue.product("h", "Misc", categories=["Clothing > Dresses", "Clothing > Bottoms"]))
    assert tied.look_category == "" and "several look categories" in tied.problems[0]
    unmapped = adapter.describe(catalogue.product("i", "Gadgets", categories=["Misc > Other"]))
    assert unmapped.look_category == "" and "Gadgets" in unmapped.problems[0]
    assert not unmapped.is_recommendable
    assert look(catalogue.product("j", "Gift cards", categories=["Accessories > Bags"])) == ""  # "" is a decision


def test_gender_values_oscar_shops_use(catalogue):
    adapter = OscarAdapter(gender_attribute="sex", colour_attribute="")
    product_class = catalogue.product_class("Shoes")
    ProductAttribute.objects.create(product_class=product_class, code="sex", name="Sex", type=ProductAttribute.TEXT)
    group = AttributeOptionGroup.objects.create(name="Audience")
    for option in ("Men", "Women", "Kids"):
        AttributeOption.objects.create(group=group, option=option)
    boots = catalogue.product_class("Boots")
    ProductAttribute.objects.create(product_class=boots, code="sex", name="Sex", type=ProductAttribute.MULTI_OPTION,
                                    option_group=group)

    def gender(product_class, value):
        product = catalogue.product(f"p{catalogue.counter}", product_class)
        setattr(product.attr, "sex", value)
        product.save()
        return adapter.describe(product)

    assert gender("Shoes", "female").gender == "Women"
    assert gender("Shoes", " MEN ").gender == "Men"
    assert gender("Boots", list(group.options.filter(option__in=["Men", "Women"]))).gender == "Unisex"
    odd = gender("Shoes", "alien")
    assert odd.gender == "" and "'sex' value 'alien' is not a gender" in odd.problems
    assert set(adapter.describe(catalogue.product("none", "Shoes")).problems) == {
        "no 'sex' attribute value", "no look category for product class 'Shoes' (ADAPTER_OPTIONS['look_categories'])"}


def test_parents_and_children(catalogue, adapter):
    parent = catalogue.product("Classic tee", "T-shirts", gender="Men", colour="Black", structure="parent",
                               categories=["Clothing > Tops"], photo=TSHIRT)
    small = catalogue.product("", None, structure="child", parent=parent, price="15.00", stock=5)
    large = catalogue.product("Classic tee L", None, structure="child", parent=parent, colour="Grey",
                              price="16.00", stock=0)
    facts = {f.pk: f for f in adapter.describe_many([parent, small, large])}
    # children inherit the parent's attributes (unless they have their own), class, categories and picture
    assert (facts[small.pk].name, facts[small.pk].gender, facts[small.pk].look_category) == ("Classic tee", "Men", "top")
    assert facts[small.pk].colours == ("black",) and facts[large.pk].colours == ("grey",)
    assert facts[small.pk].image_url == facts[parent.pk].image_url != ""
    assert (facts[small.pk].price, facts[small.pk].is_available) == (Decimal("15.00"), True)
    assert (facts[large.pk].price, facts[large.pk].is_available) == (Decimal("16.00"), False)
    # the parent: what Oscar's strategy says of parents (available when a child is, priced as its first child)
    from oscar.core.loading import get_class

    oscar_says = get_class("partner.strategy", "Selector")().strategy().fetch_for_parent(parent)
    assert facts[parent.pk].is_available and facts[parent.pk].price == oscar_says.price.incl_tax
    assert adapter.images_of(parent) == list(parent.images.all()) and adapter.images_of(small) == []

    parent.is_public = False
    parent.save()
    assert not adapter.describe(small).is_available  # a child of a hidden parent is not sold
    visible = set(adapter.visible_products().values_list("pk", flat=True))
    assert not visible & {parent.pk, small.pk, large.pk}


def test_describe_many_reads_in_a_constant_number_of_queries(catalogue, adapter):
    products = [
        catalogue.product(f"Tee {n}", "T-shirts" if n % 2 else "Shoes", gender="Men", colour="Red",
                          categories=["Clothing > Tops", "Sale"], photo_bytes=TSHIRT.read_bytes())
        for n in range(12)
    ]
    with CaptureQueriesContext(connection) as few:
        adapter.describe_many(products[:2])
    with CaptureQueriesContext(connection) as many:
        facts = adapter.describe_many(products)
    assert len(many) == len(few) <= 14, [q["sql"][:120] for q in many.captured_queries]
    assert [f.pk for f in facts] == [p.pk for p in products] and all(f.gender == "Men" for f in facts)


def test_one_broken_product_does_not_hide_the_others(catalogue, adapter, monkeypatch):
    good, bad = catalogue.product("good", "T-shirts", gender="Men"), catalogue.product("bad", "T-shirts", gender="Men")
    original = OscarAdapter._facts

    def flaky(self, product, strategy, look):
        if product.pk == bad.pk:
            raise RuntimeError("strategy exploded")
        return original(self, product, strategy, look)

    monkeypatch.setattr(OscarAdapter, "_facts", flaky)
    facts = adapter.describe_many([bad, good])
    assert facts[1].is_available and not facts[0].is_available
    assert "strategy exploded" in facts[0].problems[0]


def test_images_are_read_from_oscar_storage(catalogue, adapter):
    product = catalogue.product("Shirt", "T-shirts", gender="Men")
    image = add_image(product, TSHIRT.read_bytes(), name="shirt.jpg")
    assert adapter.read_image(image) == TSHIRT.read_bytes()
    info = adapter.image_facts(image)
    assert (info.pk, info.product_pk, info.url) == (image.pk, product.pk, image.original.url)
    assert info.name == image.original.name and info.version == f"{image.original.name}:{TSHIRT.stat().st_size}"
    assert adapter.product_of(image) == product
    image.original.storage.delete(image.original.name)
    with pytest.raises(FileNotFoundError):
        adapter.read_image(image)
    assert ProductImage.objects.filter(pk__in=adapter.images_of_products([product.pk])).count() == 1


def test_bad_options_are_an_improperly_configured_naming_the_setting(settings):
    base = {"PRODUCT_ADAPTER": "recommender.adapters.oscar.OscarAdapter"}
    settings.BUY_THE_LOOK = {**base, "ADAPTER_OPTIONS": {"look_categories": {"Shirts": "shirt"}}}
    with pytest.raises(ImproperlyConfigured, match=r"ADAPTER_OPTIONS.*look_categories\['Shirts'\] = 'shirt'"):
        look_settings.adapter
    settings.BUY_THE_LOOK = {**base, "ADAPTER_OPTIONS": {"gender_atribute": "sex"}}
    with pytest.raises(ImproperlyConfigured, match="gender_atribute"):
        look_settings.adapter


def test_the_module_imports_without_oscar_installed():
    code = ("import sys; sys.modules['oscar'] = None\n"
            "import django; from django.conf import settings; settings.configure(); django.setup()\n"
            "from recommender.adapters.oscar import OscarAdapter\n"
            "print(OscarAdapter(look_categories={'Tops': 'top'}).look_categories)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "{'tops': 'top'}"


# -- receivers ---------------------------------------------------------------------------------------------

def test_one_transaction_tells_the_hooks_once_per_product_after_commit(catalogue, calls,
                                                                       django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            product = catalogue.product("Shirt", "T-shirts", gender="Men", colour="Red",
                                        categories=["Clothing > Tops"], photo=TSHIRT)
            record = StockRecord.objects.get(product=product)
            record.price = Decimal("12.00")
            record.save()
            assert calls == []  # nothing before the commit
    image = product.images.get()
    assert calls == [("product_changed", product.pk), ("image_changed", image.pk)]

    calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        product.categories.add(catalogue.category("Sale"))  # through the m2m manager: no post_save
    assert calls == [("product_changed", product.pk)]

    calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        image_id = image.pk
        image.delete()
    assert calls == [("image_removed", image_id), ("product_changed", product.pk)]

    calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        product_id = product.pk
        product.delete()
    assert calls == [("product_removed", product_id)]


def test_a_rolled_back_change_tells_nothing(catalogue, calls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        product = catalogue.product("Shirt", "T-shirts", gender="Men")
    calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                product.title = "Renamed"
                product.save()
                raise RuntimeError("rollback")
        except RuntimeError:
            pass
        StockRecord.objects.filter(product=product).first().save()  # a new change after the rollback
    assert calls == [("product_changed", product.pk)]


def test_children_and_parents_follow_each_other(catalogue, calls, django_capture_on_commit_callbacks):
    from recommender.models import ImageAnalysis

    with django_capture_on_commit_callbacks(execute=True):
        parent = catalogue.product("Classic tee", "T-shirts", gender="Men", structure="parent", photo=TSHIRT)
        child = catalogue.product("", None, structure="child", parent=parent, photo=TSHIRT)
    for image in ProductImage.objects.filter(product__in=[parent, child]):  # as if analysed
        ImageAnalysis.objects.create(image=image, product_id=image.product_id, status="done")
    calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        StockRecord.objects.filter(product=child).update(price=Decimal("1.00"))  # no signal: nothing
        StockRecord.objects.get(product=child).save()
    assert sorted(calls) == sorted([("product_changed", child.pk), ("product_changed", parent.pk)])
    calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        parent.attr.gender = catalogue.genders.options.get(option="Women")
        parent.save()
    assert sorted(calls) == sorted([("product_changed", parent.pk), ("product_changed", child.pk)])


def test_fixture_loading_and_unchanged_files_do_not_analyse(catalogue, calls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        image = add_image(catalogue.product("Shirt", "T-shirts", gender="Men"), TSHIRT.read_bytes())
    calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        post_save.send(sender=ProductImage, instance=image, created=True, raw=True, using="default")
        again = ProductImage.objects.get(pk=image.pk)
        again.caption = "new caption"
        again.save()
    assert calls == []


def test_a_renamed_category_or_class_resyncs_its_analysed_products(catalogue, calls, django_capture_on_commit_callbacks):
    from recommender.models import ImageAnalysis

    with django_capture_on_commit_callbacks(execute=True):
        analysed = catalogue.product("Analysed", "Misc", gender="Men", categories=["Clothing > Knits"], photo=TSHIRT)
        catalogue.product("Never analysed", "Misc", gender="Men", categories=["Clothing > Knits"])
    image = analysed.images.get()
    ImageAnalysis.objects.create(image=image, product_id=analysed.pk, status="done")
    calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        knits = catalogue.category("Clothing > Knits")
        knits.name = "Knitwear"
        knits.save()
    assert calls == [("product_changed", analysed.pk)]
    calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        product_class = catalogue.product_class("Misc")
        product_class.name = "Jumpers"
        product_class.save()
    assert calls == [("product_changed", analysed.pk)]


@pytest.mark.django_db(transaction=True)
def test_changes_outside_a_transaction_are_told_at_once(calls):
    """Autocommit (no ATOMIC_REQUESTS, a script): each save is committed when it returns, and told then."""
    catalogue = Catalogue()
    product = catalogue.product("Shirt", "T-shirts", gender="Men")  # (made in its own transaction)
    calls.clear()
    image = add_image(product, TSHIRT.read_bytes())
    assert calls == [("image_changed", image.pk), ("product_changed", product.pk)] or \
        calls == [("product_changed", product.pk), ("image_changed", image.pk)]
    calls.clear()
    record = StockRecord.objects.get(product=product)
    record.num_in_stock = 0
    record.save()
    assert calls == [("product_changed", product.pk)]


def test_the_recommenders_migrations_match_its_models_in_an_oscar_shop():
    from django.core.management import call_command

    call_command("makemigrations", "recommender", "--check", "--dry-run", verbosity=0)  # SystemExit(1) on a diff
