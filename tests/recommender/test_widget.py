"""The {% buy_the_look product %} widget rendered from stored analyses."""
import re

import pytest
from django.template import Context, Template

from look_factories import bulk_inventory, make_analysis, make_image, make_product, random_unit

pytestmark = pytest.mark.django_db

WIDGET = Template("{% load buy_the_look %}{% buy_the_look product %}")


def render(product):
    return WIDGET.render(Context({"product": product}))


@pytest.fixture
def stocked(look, rng):
    tops = bulk_inventory([{"category": "top", "embedding": random_unit(rng), "price": "19.99"} for _ in range(10)])
    shoes = bulk_inventory([{"category": "footwear", "embedding": random_unit(rng)} for _ in range(10)])
    return {**look, "tops": tops, "shoes": shoes}


def test_widget_shows_the_photo_boxes_and_one_row_per_article(stocked):
    html = render(stocked["product"])
    assert 'class="btl"' in html and "Buy the look" in html
    assert stocked["image"].file.url in html
    rows = re.findall(r'<section class="btl__row" id="btl-row-([^"]+)" data-btl-key="([^"]+)" data-category="(\w+)"', html)
    assert [category for _, _, category in rows] == ["top", "footwear"]
    boxes = re.findall(r'class="btl__box" data-btl-key="([^"]+)" data-category="(\w+)" style="left:([\d.]+)%;top:([\d.]+)%', html)
    assert [c for _, c, *_ in boxes] == ["top", "footwear", "footwear"]  # both shoes outlined, one row
    assert {key for key, *_ in boxes} == {key for _, key, _ in rows}  # every box points at its row
    assert boxes[0][2:] == ("25.0", "15.0")
    assert len(re.findall(r'class="btl__card"', html)) == 12  # k=6 cards in each of the two rows
    assert "€19.99" in html and 'class="btl__row-label">Top</span>' in html and 'class="btl__row-label">Footwear</span>' in html
    top_cards = re.findall(r'href="([^"]+)" data-btl-key="(top-\d+)" data-product="(\d+)"', html)
    assert len(top_cards) == 6 and {int(pk) for *_, pk in top_cards} <= {p.pk for p in stocked["tops"]}
    assert top_cards[0][0] == stocked["tops"][0].__class__.objects.get(pk=top_cards[0][2]).get_absolute_url()
    assert "recommender/buy-the-look.js" in html and "recommender/buy-the-look.css" in html
    assert "http://" not in html and "https://" not in html  # nothing from a CDN


def test_nothing_renders_without_a_full_shot(db, rng):
    shirt = make_product(category="top")
    make_analysis(make_image(shirt), full_shot=False)
    assert render(shirt).strip() == ""
    queued = make_product(category="", outfit=True)
    make_analysis(make_image(queued), full_shot=True, status="queued")
    assert render(queued).strip() == ""
    assert render(None) == ""


def test_widget_is_cached_and_invalidated_when_a_product_changes(stocked, django_assert_num_queries,
                                                                 django_capture_on_commit_callbacks):
    first = render(stocked["product"])
    with django_assert_num_queries(0):
        assert render(stocked["product"]) == first
    shown = [p for p in stocked["tops"] if p.name in first][0]
    with django_capture_on_commit_callbacks(execute=True):
        shown.price = "77.00"
        shown.save()
    again = render(stocked["product"])
    assert "€77.00" in again and again != first


def test_widget_cache_is_invalidated_when_an_analysis_is_stored(stocked, rng, django_capture_on_commit_callbacks):
    from ml.pipeline import Analysis, Article

    from recommender.analysis import start, store

    first = render(stocked["product"])
    assert 'data-category="dress"' not in first
    bulk_inventory([{"category": "dress", "embedding": random_unit(rng)} for _ in range(6)])
    image = stocked["image"]
    result = Analysis(
        width=300, height=600, is_full_shot=True, pose_score=0.9, keypoints=[], gender="Men",
        gender_confidence=1.0, gender_source="product",
        articles=[Article("dress", 0.9, (0.2, 0.1, 0.8, 0.9), random_unit(rng))],
        image_embedding=random_unit(rng), timings={}, model_versions={"embedder": "test"},
    )
    with django_capture_on_commit_callbacks(execute=True):
        store(start(image.pk), image, result)
    again = render(stocked["product"])
    assert 'data-category="dress"' in again and 'data-category="top"' not in again


def test_articles_without_any_candidate_are_left_out(look, rng):
    bulk_inventory([{"category": "top", "embedding": random_unit(rng)} for _ in range(6)])
    bulk_inventory([{"category": "footwear", "gender": "Women", "embedding": random_unit(rng)} for _ in range(6)])
    html = render(look["product"])
    assert 'data-category="top"' in html and 'data-category="footwear"' not in html  # no men's shoes in stock
    bulk_inventory([{"category": "top", "gender": "Women", "embedding": random_unit(rng)} for _ in range(6)])
    women_only = make_product(category="", outfit=True, gender="Men")
    analysis = make_analysis(make_image(women_only), full_shot=True)
    from look_factories import add_article

    add_article(analysis, "dress", random_unit(rng))
    assert render(women_only).strip() == ""


def test_the_demo_product_page_with_the_widget_costs_four_queries(stocked, client, settings,
                                                                   django_assert_num_queries):
    """Cache off: the product with its images (gallery), ONE statement for the look's articles and the products
    of every row, the cards' products with their first image, and "more like this" with theirs.
    Cache on: the product with its images (the widget and "more like this" come from the cache)."""
    url = stocked["product"].get_absolute_url()
    client.get(url)
    with django_assert_num_queries(1):
        cached = client.get(url).content.decode()
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    client.get(url)
    with django_assert_num_queries(4):
        response = client.get(url)
    html = response.content.decode()
    assert response.status_code == 200 and len(re.findall(r'class="btl__card"', html)) == 12
    shown = [p for p in stocked["tops"] if f'data-product="{p.pk}"' in html]
    assert len(shown) == 6 and all(p.primary_image.file.url in html for p in shown)  # each card shows its photo
    assert len(re.findall(r'class="btl__card"', cached)) == 12
