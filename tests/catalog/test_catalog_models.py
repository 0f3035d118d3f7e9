"""Product and ProductImage: look category from the taxonomy, slug, URL, image fields, prices."""
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile

from catalog.models import Product, ProductImage
from catalog.pricing import suggested_price
from recommender.taxonomy import look_category_for

from catalog_helpers import image_bytes


@pytest.mark.parametrize("sub_category, article_type, expected", [
    ("Topwear", "Tshirts", "top"),
    ("Topwear", "Rompers", "dress"),        # articleType entry wins over the Topwear subCategory
    ("Topwear", "Jumpsuit", "dress"),
    ("Dress", "Dresses", "dress"),
    ("Bottomwear", "Jeans", "bottom"),
    ("Loungewear and Nightwear", "Lounge Pants", "bottom"),
    ("Loungewear and Nightwear", "Nightdress", "dress"),
    ("Shoes", "Heels", "footwear"),
    ("Flip Flops", "Flip Flops", "footwear"),
    ("Bags", "Handbags", "bag"),
    ("Wallets", "Wallets", "bag"),
    ("Watches", "Watches", ""),
    ("", "", ""),
    (" topwear ", "TSHIRTS", "top"),        # case and spaces do not matter
])
def test_look_category_from_the_taxonomy(sub_category, article_type, expected):
    assert look_category_for(sub_category, article_type) == expected


@pytest.mark.django_db
def test_look_category_and_slug_are_derived_on_save(make_product):
    product = make_product(name="Floral Summer Romper!", sub_category="Topwear", article_type="Rompers")
    assert product.look_category == "dress"
    assert product.slug == "floral-summer-romper"
    assert product.get_absolute_url() == f"/products/{product.pk}-floral-summer-romper/"

    product.article_type = "Tshirts"
    product.save(update_fields=["article_type"])
    product.refresh_from_db()
    assert product.look_category == "top"


@pytest.mark.django_db
def test_outfit_products_have_no_look_category(make_product):
    look = make_product(name="Street look 0001", master_category="Outfit", sub_category="", article_type="", gender="")
    assert look.is_outfit and look.look_category == ""
    assert not make_product().is_outfit


@pytest.mark.django_db
def test_image_records_size_and_sha256_and_primary_image_comes_first(make_product, add_image):
    product = make_product()
    second = add_image(product, image_bytes((40, 50)), position=1, is_primary=False)
    first = add_image(product, image_bytes((80, 60), colour=(1, 1, 1)), position=2, is_primary=True)
    assert (second.width, second.height) == (40, 50)
    assert len(first.sha256) == 64 and first.sha256 != second.sha256
    assert Product.objects.with_primary_image().get(pk=product.pk).primary_image == first
    assert first.file.name.startswith(f"products/{product.sku.lower()}/") and first.file.name.endswith(".jpg")


@pytest.mark.django_db
def test_model_validation_refuses_a_duplicate_and_a_non_image(make_product, add_image):
    product = make_product()
    data = image_bytes()
    add_image(product, data)

    duplicate = ProductImage(product=product, file=ContentFile(data, name="again.jpg"))
    with pytest.raises(ValidationError, match="already attached"):
        duplicate.full_clean()

    not_an_image = ProductImage(product=product, file=ContentFile(b"GIF89a but not really", name="x.gif"))
    with pytest.raises(ValidationError) as error:
        not_an_image.full_clean()
    assert "not an image" in str(error.value)


def test_derived_prices_are_deterministic_and_plausible():
    assert suggested_price("Tshirts", "1234") == suggested_price("Tshirts", "1234")
    prices = [suggested_price("Watches", str(sku)) for sku in range(200)]
    assert all(Decimal("90") <= price <= Decimal("194") for price in prices)
    assert len(set(prices)) > 20
    assert all(str(price).endswith((".99", ".49")) for price in prices)
    assert suggested_price("Unknown Type", "1") > 0


@pytest.mark.django_db
def test_stored_name_follows_the_real_format_not_the_uploaded_name(make_product, add_image):
    image = add_image(make_product(), image_bytes(fmt="PNG"), name="../../etc/passwd.jpg")
    assert image.file.name.endswith(".png") and ".." not in image.file.name
