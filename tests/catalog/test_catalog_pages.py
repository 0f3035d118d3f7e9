"""The shop's pages: product list (filters, search, sort, pagination) and product page (gallery, look slot)."""
import re

import pytest
from django.urls import reverse

from catalog.views import PAGE_SIZE, look_widget_enabled

LIST_URL = "/products/"


def listed_skus(response):
    return [product.sku for product in response.context["products"]]


@pytest.fixture
def shop(make_product):
    return {
        "dress": make_product(sku="D1", name="Red Summer Dress", gender="Women", sub_category="Dress",
                              article_type="Dresses", base_colour="Red", price="59.99"),
        "tee": make_product(sku="T1", name="Blue Cotton Tee", gender="Men", sub_category="Topwear",
                            article_type="Tshirts", base_colour="Blue", price="15.00"),
        "jeans": make_product(sku="J1", name="Blue Slim Jeans", gender="Men", sub_category="Bottomwear",
                              article_type="Jeans", base_colour="Blue", price="49.00"),
        "bag": make_product(sku="B1", name="Black Leather Handbag", gender="Women", sub_category="Bags",
                            article_type="Handbags", base_colour="Black", price="89.00"),
        "hidden": make_product(sku="H1", name="Retired Blue Tee", gender="Men", article_type="Tshirts",
                               is_active=False),
        "look": make_product(sku="look-0001", name="Street look 0001", gender="", master_category="Outfit",
                             sub_category="", article_type="", base_colour="", price="0"),
    }


@pytest.mark.django_db
def test_home_redirects_to_the_product_list(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == LIST_URL


@pytest.mark.django_db
def test_list_shows_active_products_with_cards(client, shop, add_image):
    add_image(shop["dress"])
    response = client.get(LIST_URL)
    assert response.status_code == 200
    assert sorted(listed_skus(response)) == ["B1", "D1", "J1", "T1", "look-0001"]
    html = response.content.decode()
    assert shop["dress"].images.get().file.url in html
    assert "€59.99" in html and shop["dress"].get_absolute_url() in html
    assert re.search(r'class="badge badge--look">Look<', html)  # the outfit's badge
    assert html.count("badge--look") == 1


@pytest.mark.django_db
@pytest.mark.parametrize("query, expected", [
    ("gender=Men", ["J1", "T1"]),
    ("look=top", ["T1"]),
    ("look=dress", ["D1"]),
    ("look=looks", ["look-0001"]),
    ("gender=Women&look=bag", ["B1"]),
    ("article_type=Jeans", ["J1"]),
    ("colour=Blue", ["J1", "T1"]),
    ("q=blue+jeans", ["J1"]),
    ("q=d1", ["D1"]),                       # the SKU, case-insensitive
    ("min_price=40&max_price=60", ["D1", "J1"]),
    ("gender=Nobody", ["B1", "D1", "J1", "T1", "look-0001"]),  # an invalid value is ignored
])
def test_filters_filter(client, shop, query, expected):
    response = client.get(f"{LIST_URL}?{query}")
    assert response.status_code == 200
    assert sorted(listed_skus(response)) == expected


@pytest.mark.django_db
def test_sort_by_price(client, shop):
    cheap_first = listed_skus(client.get(f"{LIST_URL}?sort=price&look=top"))
    assert listed_skus(client.get(f"{LIST_URL}?sort=price&gender=Men")) == ["T1", "J1"]
    assert listed_skus(client.get(f"{LIST_URL}?sort=-price&gender=Men")) == ["J1", "T1"]
    assert cheap_first == ["T1"]


@pytest.mark.django_db
def test_pagination_keeps_the_filters(client, make_product):
    for number in range(PAGE_SIZE + 5):
        make_product(sku=f"P{number:03d}", name=f"Plain shirt {number:03d}", gender="Men")
    make_product(sku="W1", name="Women only", gender="Women")

    first = client.get(f"{LIST_URL}?gender=Men")
    second = client.get(f"{LIST_URL}?gender=Men&page=2")

    assert len(listed_skus(first)) == PAGE_SIZE and len(listed_skus(second)) == 5
    assert set(listed_skus(first)).isdisjoint(listed_skus(second))
    assert "?gender=Men&amp;page=2" in first.content.decode()
    assert client.get(f"{LIST_URL}?page=99").status_code == 404


@pytest.mark.django_db
def test_images_read_with_the_product_come_in_gallery_order_without_another_query(shop, add_image,
                                                                                    django_assert_num_queries):
    from catalog_helpers import image_bytes

    from catalog.models import Product

    dress, bag = shop["dress"], shop["bag"]
    back = add_image(dress, image_bytes(size=(40, 60), colour=(10, 200, 10)), position=0, is_primary=False)
    front = add_image(dress, image_bytes(size=(64, 48), colour=(200, 10, 10)), position=5, is_primary=True)
    side = add_image(dress, image_bytes(size=(50, 50), colour=(10, 10, 200)), position=1, is_primary=False)
    expected = [front.pk, back.pk, side.pk]  # primary first, then by position
    with django_assert_num_queries(1):
        products = {p.pk: p for p in Product.objects.with_images().filter(pk__in=[dress.pk, bag.pk])}
        images = products[dress.pk].ordered_images
        assert [image.pk for image in images] == expected
        assert [(image.width, image.height) for image in images] == [(front.width, front.height), (back.width, back.height),
                                                                     (side.width, side.height)]
        assert images[0].file.url == front.file.url and products[dress.pk].primary_image.pk == front.pk
        assert products[bag.pk].ordered_images == [] and products[bag.pk].primary_image is None
    prefetched = Product.objects.with_primary_image().get(pk=dress.pk)
    assert [image.pk for image in prefetched.ordered_images] == expected


@pytest.mark.django_db
def test_product_page_shows_its_gallery_and_details(client, shop, add_image):
    dress = shop["dress"]
    first = add_image(dress, is_primary=True)
    second = add_image(dress, position=1, is_primary=False, name="back.png")
    response = client.get(dress.get_absolute_url())
    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-gallery-main src="{first.file.url}"' in html
    assert html.count("data-gallery-thumb") == 2 and f'data-src="{second.file.url}"' in html
    for text in ("Red Summer Dress", "€59.99", "Women", "Dresses", "Red", "D1"):
        assert text in html
    assert 'id="look"' in html
    assert response.context["look_widget_enabled"] == look_widget_enabled()


@pytest.mark.django_db
def test_product_page_url_name_and_canonical_slug(client, shop):
    dress = shop["dress"]
    assert reverse("catalog:product-detail", kwargs={"pk": dress.pk, "slug": dress.slug}) == dress.get_absolute_url()
    response = client.get(f"/products/{dress.pk}-wrong-slug/")
    assert response.status_code == 301 and response["Location"] == dress.get_absolute_url()
    assert client.get("/products/999999-nothing/").status_code == 404


@pytest.mark.django_db
def test_inactive_product_is_hidden_from_customers_not_from_staff(client, admin_client, shop):
    url = shop["hidden"].get_absolute_url()
    assert client.get(url).status_code == 404
    response = admin_client.get(url)
    assert response.status_code == 200 and "only staff can see this page" in response.content.decode()


@pytest.mark.django_db
def test_look_page_has_no_price_and_links_to_its_articles(client, shop):
    response = client.get(shop["look"].get_absolute_url())
    html = response.content.decode()
    assert response.status_code == 200
    assert "Street look 0001" in html and 'href="#look"' in html and "€0.00" not in html


def test_look_widget_is_enabled_only_with_the_recommender_tags(monkeypatch):
    from django.apps import apps

    monkeypatch.setattr(apps, "is_installed", lambda name: False)
    assert look_widget_enabled() is False


@pytest.mark.django_db
def test_pages_use_only_local_assets(client, shop):
    html = client.get(LIST_URL).content.decode()
    assert "/static/css/shop.css" in html and "/static/js/shop.js" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)


@pytest.mark.django_db
def test_more_like_this_shows_the_same_type_closest_in_price(client, make_product):
    shirt = make_product(sku="S0", name="Shirt", gender="Men", article_type="Shirts", price="40.00")
    for sku, price in [("S1", "90.00"), ("S2", "41.00"), ("S3", "35.00"), ("S4", "60.00"), ("S5", "10.00")]:
        make_product(sku=sku, name=f"Shirt {sku}", gender="Men", article_type="Shirts", price=price)
    make_product(sku="W1", name="Women shirt", gender="Women", article_type="Shirts", price="40.00")
    make_product(sku="J1", name="Jeans", gender="Men", article_type="Jeans", price="40.00")
    response = client.get(shirt.get_absolute_url())
    assert [p.sku for p in response.context["more_like_this"]] == ["S2", "S3", "S4", "S5"]


@pytest.mark.django_db
def test_more_like_this_of_an_outfit_shows_the_newest_outfits_of_its_gender(client, make_product):
    look = make_product(sku="O0", gender="Women", master_category="Outfit", article_type="Dresses")
    for sku, gender in [("O1", "Women"), ("O2", "Girls"), ("O3", "Women"), ("O4", "Men"), ("O5", "Women")]:
        make_product(sku=sku, gender=gender, master_category="Outfit", article_type="Dresses")
    make_product(sku="D1", gender="Women", article_type="Dresses")  # a dress, not an outfit
    response = client.get(look.get_absolute_url())
    assert [p.sku for p in response.context["more_like_this"]] == ["O5", "O3", "O1"]


@pytest.mark.django_db
def test_more_like_this_is_cached_and_follows_every_catalogue_change(client, make_product,
                                                                    django_capture_on_commit_callbacks):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def more_section(url):
        with CaptureQueriesContext(connection) as queries:
            html = client.get(url).content.decode()
        section = html.split('id="more-title"', 1)[1] if 'id="more-title"' in html else ""
        return section, queries.captured_queries

    with django_capture_on_commit_callbacks(execute=True):  # the version bumps run on commit
        shirt = make_product(sku="C0", name="Cached shirt", gender="Men", article_type="Shirts", price="40.00")
        near = make_product(sku="C1", name="Near shirt", gender="Men", article_type="Shirts", price="41.00")
        make_product(sku="C2", name="Far shirt", gender="Men", article_type="Shirts", price="90.00")
    url = shirt.get_absolute_url()
    section, first = more_section(url)
    assert "Near shirt" in section and "Far shirt" in section
    section, second = more_section(url)
    assert "Near shirt" in section
    # from the cache: the section's query (the nearest prices, a UNION) is not run again
    assert any("UNION" in query["sql"] for query in first)
    assert not any("UNION" in query["sql"] for query in second) and len(second) < len(first)

    with django_capture_on_commit_callbacks(execute=True):
        near.is_active = False
        near.save()
    section, _ = more_section(url)
    assert "Near shirt" not in section and "Far shirt" in section

    with django_capture_on_commit_callbacks(execute=True):
        make_product(sku="C3", name="New shirt", gender="Men", article_type="Shirts", price="39.00")
    section, _ = more_section(url)
    assert section.index("New shirt") < section.index("Far shirt")


@pytest.mark.django_db
def test_more_like_this_breaks_price_ties_by_age_and_skips_inactive_products(client, make_product):
    shirt = make_product(sku="T0", name="Tee", gender="Women", article_type="Tshirts", price="40.00")
    for sku, price, active in [("T1", "45.00", True), ("T2", "35.00", True), ("T3", "35.00", False),
                               ("T4", "35.00", True), ("T5", "45.00", True), ("T6", "45.00", True)]:
        product = make_product(sku=sku, name=f"Tee {sku}", gender="Women", article_type="Tshirts", price=price)
        if not active:
            product.is_active = False
            product.save()
    response = client.get(shirt.get_absolute_url())
    # all five are 5.00 away: the oldest four, whichever side of the price they are on
    assert [p.sku for p in response.context["more_like_this"]] == ["T1", "T2", "T4", "T5"]


def test_the_demo_process_cache_holds_both_cached_parts_of_a_thousand_product_pages():
    """Without a shared cache the demo keeps the widget and "more like this" of every page in its process: the
    first page's entries must survive a thousand other pages (Django's default of 300 entries would evict them)."""
    from django.core.cache.backends.locmem import LocMemCache

    from shop import settings as project

    config = project.PROCESS_CACHE
    cache = LocMemCache("capacity-probe", {"OPTIONS": config.get("OPTIONS", {}), "TIMEOUT": 60})
    cache.clear()
    for page in range(1000):
        cache.set(f"widget:{page}", "html")
        cache.set(f"more-like-this:{page}", "html")
    assert cache.get("widget:0") == "html" and cache.get("more-like-this:0") == "html"
    cache.clear()
