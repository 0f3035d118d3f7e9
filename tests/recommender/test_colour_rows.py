"""Colour in the look query: the visual candidates re-ordered by colour similarity, and the "same colour" labels."""
import numpy as np
import pytest
from rest_framework.test import APIClient

from ml.colour import WORDS
from recommender.looks import look_for

from look_factories import at_cosine, bulk_inventory

pytestmark = pytest.mark.django_db


def colour_vector(**shares):
    """A colour descriptor: square roots of the given word probabilities (the rest 0), unit length."""
    vector = np.zeros(len(WORDS), np.float32)
    for word, share in shares.items():
        vector[WORDS.index(word.replace("_", " "))] = share
    vector = np.sqrt(vector)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def red_top(look):
    top = look["top"]
    top.colour, top.colour_name, top.colours = colour_vector(Red=0.9, Maroon=0.1), "Red", [["Red", 0.9]]
    top.save()
    return top


@pytest.fixture
def shop(red_top, rng):
    """Blue tops that look slightly more alike than red ones, red tops, dark red tops, tops without colours."""
    query = np.asarray(red_top.embedding, np.float32)
    blue = bulk_inventory([{"category": "top", "embedding": at_cosine(query, 0.99, rng),
                            "colour_vector": colour_vector(Blue=1), "colour_name": "Blue"} for _ in range(8)])
    red = bulk_inventory([{"category": "top", "embedding": at_cosine(query, 0.95, rng),
                           "colour_vector": colour_vector(Red=1), "colour_name": "Red"} for _ in range(3)])
    dark_red = bulk_inventory([{"category": "top", "embedding": at_cosine(query, 0.95, rng),
                                "colour_vector": colour_vector(Maroon=0.6, Red=0.4), "colour_name": "Maroon"}
                               for _ in range(2)])
    unknown = bulk_inventory([{"category": "top", "embedding": at_cosine(query, 0.95, rng)} for _ in range(3)])
    return {"blue": {p.pk for p in blue}, "red": {p.pk for p in red}, "dark_red": {p.pk for p in dark_red},
            "unknown": {p.pk for p in unknown}}


def top_row(product, **kwargs):
    return next(row for row in look_for(product, **kwargs) if row.category == "top")


def test_products_of_the_articles_colour_come_first_and_say_so(look, shop):
    row = top_row(look["product"], k=6)
    shown = [card.pk for card in row.recommendations]
    assert set(shown[:3]) == shop["red"] and set(shown[3:5]) == shop["dark_red"]
    assert set(shown[5:]) <= shop["blue"]
    labels = {card.pk: card.colour_match for card in row.recommendations}
    assert {labels[pk] for pk in shop["red"]} == {"same"}
    assert {labels[pk] for pk in shop["dark_red"]} == {"similar"}  # Bhattacharyya ≈ 0.85 ≥ SIMILAR_COLOUR
    assert labels[shown[5]] == ""
    red_card = row.recommendations[0]
    assert red_card.colour_label == "Same colour" and red_card.colour_name == "Red"
    assert red_card.colour_similarity > 0.9
    # the distance shown stays the visual one
    assert abs(red_card.distance - 0.05) < 1e-3


def test_colour_weight_zero_is_visual_order_only(look, shop, settings):
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "COLOUR_WEIGHT": 0}
    row = top_row(look["product"], k=6)
    assert {card.pk for card in row.recommendations} <= shop["blue"]
    distances = [card.distance for card in row.recommendations]
    assert distances == sorted(distances)


def test_an_article_without_colours_is_matched_visually(look, red_top, shop):
    red_top.colour, red_top.colour_name = None, ""
    red_top.save()
    row = top_row(look["product"], k=6)
    assert {card.pk for card in row.recommendations} <= shop["blue"]
    assert {card.colour_match for card in row.recommendations} == {""}


def test_products_without_colours_are_not_lost_only_ranked_after(look, shop):
    row = top_row(look["product"], k=16)
    shown = [card.pk for card in row.recommendations]
    assert set(shown) == shop["blue"] | shop["red"] | shop["dark_red"] | shop["unknown"]
    assert set(shown[-3:]) == shop["unknown"]  # same visual distance as the reds, no colour to match


def test_the_api_reports_the_colour_match(look, shop):
    body = APIClient().get(f"/api/products/{look['product'].pk}/look/?k=6").json()
    top = next(row for row in body["rows"] if row["category"] == "top")
    assert top["article"]["colour_name"] == "Red"
    cards = top["recommendations"]
    assert [card["colour_match"] for card in cards[:3]] == ["same"] * 3
    assert cards[0]["colour_name"] == "Red" and 0.9 < cards[0]["colour_similarity"] <= 1.0001


def test_a_products_own_article_takes_the_shops_colour_word_and_a_new_one_is_read_again(db):
    """build_articles blends the shop's colour into the product's own article; changing it re-queues the photo."""
    from PIL import Image, ImageDraw

    from ml.colour import ColourReader
    from ml.pipeline import Analysis
    from recommender.analysis import build_articles
    from recommender.models import DetectedArticle
    from recommender.sync import describe, resync_product

    from look_factories import make_analysis, make_image, make_product

    product = make_product(category="top", gender="Men", colour="Navy Blue")
    analysis = make_analysis(make_image(product))
    photo = Image.new("RGB", (224, 224), "white")
    ImageDraw.Draw(photo).rectangle([50, 40, 174, 190], fill=(40, 80, 170))
    read = ColourReader().read(photo, [None])[0]
    assert read.main == "Blue"
    result = Analysis(width=224, height=224, is_full_shot=False, pose_score=0.0, keypoints=[], gender="Men",
                      gender_confidence=1.0, gender_source="product", articles=[],
                      image_embedding=np.eye(256, dtype=np.float32)[0], model_versions={"embedder": "test"},
                      image_colour=read)
    rows = build_articles(analysis, product.pk, describe(product), result)
    assert len(rows) == 1 and rows[0].is_inventory
    assert rows[0].colour_name == "Navy Blue" and rows[0].colours[0][0] == "Navy Blue"
    assert "Blue" in [name for name, _ in rows[0].colours]  # what the photo shows still counts
    DetectedArticle.objects.bulk_create(rows)
    assert resync_product(product) == []  # nothing changed
    product.base_colour = "Black"
    product.save()
    assert resync_product(product) == [analysis.image_id]
