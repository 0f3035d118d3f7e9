"""Kind in the look query: visual candidates re-ordered by how alike the two articles' kinds are (ml.kind_head)."""
import numpy as np
import pytest
from django.db import connection

from recommender.conf import KIND_DIM
from recommender.filters import Filters
from recommender.looks import look_for
from recommender.queries import search

from look_factories import at_cosine, bulk_inventory

pytestmark = pytest.mark.django_db


def kind_vector(*indices):
    """A kind descriptor spread evenly over the given article-type columns (unit length)."""
    vector = np.zeros(KIND_DIM, np.float32)
    vector[list(indices)] = 1.0
    return vector / np.linalg.norm(vector)


@pytest.fixture
def shop(look):
    """For the look's top (a kind-3 article): tops of kind 7 that look a little closer, and tops of kind 3."""
    rng = np.random.default_rng(46)
    top = look["top"]
    top.kind = kind_vector(3)
    top.save()
    query = np.asarray(top.embedding, np.float32)
    near = bulk_inventory([{"category": "top", "embedding": at_cosine(query, 0.99, rng), "kind_vector": kind_vector(7)}
                           for _ in range(8)])
    same = bulk_inventory([{"category": "top", "embedding": at_cosine(query, 0.96, rng), "kind_vector": kind_vector(3)}
                           for _ in range(3)])
    return {"query": query, "near": {p.pk for p in near}, "same": {p.pk for p in same}}


def top_row(product, **kwargs):
    return next(row for row in look_for(product, **kwargs) if row.category == "top")


def test_products_of_the_articles_kind_come_first(look, shop):
    row = top_row(look["product"], k=5)
    shown = [card.pk for card in row.recommendations]
    assert set(shown[:3]) == shop["same"] and set(shown[3:]) <= shop["near"]
    assert abs(row.recommendations[0].distance - 0.04) < 1e-3  # the distance shown stays the visual one


def test_kind_weight_zero_is_visual_order_only(look, shop, settings):
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "KIND_WEIGHT": 0}
    assert {card.pk for card in top_row(look["product"], k=5).recommendations} <= shop["near"]


def test_search_by_photo_compares_kinds_too(shop):
    """``search_many`` (search by photo) takes the article's kind as a parameter; without one, visual order."""
    with connection.cursor() as cursor:
        with_kind = search(cursor, shop["query"], category="top", genders=None, filters=Filters.build(k=3), exclude_ids=(),
                           kind=kind_vector(3))
        without = search(cursor, shop["query"], category="top", genders=None, filters=Filters.build(k=3), exclude_ids=())
    assert {hit.product_id for hit in with_kind} == shop["same"]
    assert {hit.product_id for hit in without} <= shop["near"]
