"""Precomputed candidates of look rows (``LOOK_CANDIDATES``, ``recommender.candidates``) on real PostgreSQL.

These tests commit (``transactional_db``): "changed since" compares the start of the transactions that wrote the
articles with the time a list was computed, which a test inside one transaction cannot show.
"""
import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from recommender import hooks
from recommender.candidates import look_row_articles, refresh
from recommender.checks import check_settings
from recommender.looks import look_for
from recommender.models import DetectedArticle, LookCandidates

from look_factories import add_article, at_cosine, bulk_inventory, make_analysis, make_image, make_product, png_bytes, \
    random_unit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def lists_on(settings):
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "LOOK_CANDIDATES": True, "CANDIDATES_MARGIN": 0}
    return settings


@pytest.fixture
def outfit(rng):
    """A men's outfit with a top and a shoe, and 60 inventory tops and 60 shoes around them (some women's)."""
    product = make_product(category="", gender="Men", outfit=True, colour="")
    analysis = make_analysis(make_image(product, content=png_bytes(300, 600, seed=3)), full_shot=True)
    top = add_article(analysis, "top", random_unit(rng), box=(0.25, 0.15, 0.75, 0.5))
    shoe = add_article(analysis, "footwear", random_unit(rng), box=(0.3, 0.85, 0.45, 0.98), confidence=0.8)
    specs = []
    for article, category in ((top, "top"), (shoe, "footwear")):
        for index in range(60):
            specs.append({"category": category, "gender": "Women" if index % 4 == 0 else "Men",
                          "embedding": at_cosine(np.asarray(article.embedding), 0.3 + 0.01 * index, rng)})
    inventory = bulk_inventory(specs)
    return {"product": product, "analysis": analysis, "top": top, "shoe": shoe, "inventory": inventory}


def shown(product, **kwargs):
    return {row.category: [card.pk for card in row.recommendations] for row in look_for(product, **kwargs)}


def tamper(article, products):
    """Make ``article``'s stored list hold only the inventory articles of ``products``: what a page shows then
    proves whether it read the list."""
    ids = list(DetectedArticle.objects.filter(product__in=products, is_inventory=True).values_list("pk", flat=True))
    assert LookCandidates.objects.filter(article=article).update(ids=ids) == 1


def test_the_lists_give_the_rows_of_the_live_search_and_the_page_reads_them(outfit, lists_on):
    live = shown(outfit["product"])
    lists_on.BUY_THE_LOOK = {**lists_on.BUY_THE_LOOK, "LOOK_CANDIDATES": False}
    done = refresh([outfit["product"].pk])
    assert done.rows == 2 and LookCandidates.objects.count() == 2
    listed = LookCandidates.objects.get(article=outfit["top"])
    assert len(listed.ids) == 45  # every men's or unisex top of the shop (the depth is 100)
    assert listed.inputs == f"top|Men|{outfit['top'].model_version}"
    assert shown(outfit["product"]) == live  # off: the lists are stored but not read
    lists_on.BUY_THE_LOOK = {**lists_on.BUY_THE_LOOK, "LOOK_CANDIDATES": True}
    assert shown(outfit["product"]) == live  # on: the same products in the same order
    far = sorted(outfit["inventory"][40:60], key=lambda product: product.pk)  # the furthest men's tops
    tamper(outfit["top"], far)
    rows = shown(outfit["product"])
    assert set(rows["top"]) <= {product.pk for product in far} and len(rows["top"]) == 6
    assert rows["footwear"] == live["footwear"]


def test_what_changed_after_the_list_is_on_the_page(outfit, lists_on, rng):
    refresh([outfit["product"].pk])
    before = shown(outfit["product"])["top"]
    top = np.asarray(outfit["top"].embedding)
    newcomer = bulk_inventory([{"category": "top", "embedding": at_cosine(top, 0.99, rng)}])[0]  # committed after
    women = bulk_inventory([{"category": "top", "gender": "Women", "embedding": at_cosine(top, 0.995, rng)}])[0]
    rows = shown(outfit["product"])["top"]
    assert rows[0] == newcomer.pk and women.pk not in rows
    assert rows[1:] == before[:5]
    # the nearest one deactivated: gone at once; a men's top becoming a women's one: gone too
    DetectedArticle.objects.filter(product=newcomer).update(is_active=False)
    DetectedArticle.objects.filter(product_id=before[0]).update(gender="Women")
    assert shown(outfit["product"])["top"] == before[1:] + [shown_live(outfit, lists_on)["top"][-1]]
    # and a women's top becoming unisex now belongs in a men's look
    DetectedArticle.objects.filter(product=women).update(gender="Unisex")
    assert shown(outfit["product"])["top"][0] == women.pk
    assert shown(outfit["product"]) == shown_live(outfit, lists_on)


def shown_live(outfit, settings):
    saved = settings.BUY_THE_LOOK
    settings.BUY_THE_LOOK = {**saved, "LOOK_CANDIDATES": False}
    try:
        return shown(outfit["product"])
    finally:
        settings.BUY_THE_LOOK = saved


def test_a_list_is_not_read_for_an_article_that_changed_or_after_too_many_changes(outfit, lists_on):
    refresh([outfit["product"].pk])
    far = outfit["inventory"][50:60]
    tamper(outfit["top"], far)
    assert set(shown(outfit["product"])["top"]) <= {product.pk for product in far}
    # too many articles of the category changed since the list: searched live
    lists_on.BUY_THE_LOOK = {**lists_on.BUY_THE_LOOK, "CANDIDATES_MAX_CHANGES": 0}
    DetectedArticle.objects.filter(product=outfit["inventory"][0]).update(price=12)
    assert shown(outfit["product"])["top"] == shown_live(outfit, lists_on)["top"]
    lists_on.BUY_THE_LOOK = {**lists_on.BUY_THE_LOOK, "CANDIDATES_MAX_CHANGES": 1000}
    assert set(shown(outfit["product"])["top"]) <= {product.pk for product in far}
    # the look's own article changed gender: the list was made for another one, so it is not read
    DetectedArticle.objects.filter(pk=outfit["top"].pk).update(gender="Unisex")
    assert shown(outfit["product"])["top"] == shown_live(outfit, lists_on)["top"]
    # colour and price filters are searched live (the lists are made without them)
    DetectedArticle.objects.filter(pk=outfit["top"].pk).update(gender="Men")
    assert set(shown(outfit["product"])["top"]) <= {product.pk for product in far}
    assert shown(outfit["product"], max_price="100") == shown_live(outfit, lists_on)


def test_lists_go_with_their_articles_and_deleting_articles_stays_one_statement(outfit, lists_on):
    refresh([outfit["product"].pk])
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        DetectedArticle.objects.filter(analysis=outfit["analysis"]).delete()
    statements = [query["sql"] for query in captured.captured_queries if query["sql"] not in ("BEGIN", "COMMIT")]
    assert len(statements) == 1  # the database deletes the lists (ON DELETE CASCADE), Django reads nothing first
    assert LookCandidates.objects.count() == 0


def test_a_full_shot_analysis_queues_its_lists_when_the_setting_is_on(outfit, settings):
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "CANDIDATES_MARGIN": 0, "LOOK_CANDIDATES": False}
    hooks.look_analysed([outfit["product"].pk])  # what recommender.analysis calls after storing a full shot
    assert LookCandidates.objects.count() == 0  # off: nothing
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "LOOK_CANDIDATES": True}
    hooks.look_analysed([outfit["product"].pk, None])  # Celery eager in the tests: computed now
    assert set(LookCandidates.objects.values_list("article_id", flat=True)) == {outfit["top"].pk, outfit["shoe"].pk}
    assert look_row_articles([outfit["product"].pk]) == [outfit["shoe"].pk, outfit["top"].pk]


def test_the_command_stores_every_look_and_names_a_bad_product(outfit, lists_on):
    out = io.StringIO()
    call_command("look_candidates", stdout=out)
    assert "candidate lists of 2 look row(s) of 1 product(s)" in out.getvalue()
    assert LookCandidates.objects.count() == 2
    with pytest.raises(CommandError, match="--product"):
        call_command("look_candidates", "--product", "not-a-number")
    with pytest.raises(CommandError, match="--batch"):
        call_command("look_candidates", "--batch", "0")


def test_bad_candidate_settings_are_named(settings):
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "LOOK_CANDIDATES": "yes", "CANDIDATES_DEPTH": 0,
                             "CANDIDATES_MARGIN": -1}
    messages = [message.msg for message in check_settings(None)]
    assert any("LOOK_CANDIDATES" in message for message in messages)
    assert any("CANDIDATES_DEPTH" in message for message in messages)
    assert any("CANDIDATES_MARGIN" in message for message in messages)


def test_a_page_that_searched_its_look_live_queues_its_lists_once(outfit, settings):
    """With a broker (a worker would run the task), a look searched live because its lists are missing or outdated
    sends one ``recommender.look_candidates`` task to the bulk queue; the next pages do not send it again."""
    import base64
    import json

    import redis

    from look_factories import use_broker

    broker = "redis://127.0.0.1:6379/12"  # a database number nothing else of the project uses
    queue = "looks-bulk-lists-test"
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "BULK_QUEUE": queue, "CANDIDATES_MARGIN": 0}
    client = redis.Redis.from_url(broker)
    client.flushdb()
    previous = use_broker(False, broker)
    try:
        look_for(outfit["product"])  # no lists yet: searched live
        look_for(outfit["product"])
        messages = [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
        assert len(messages) == 1 and messages[0]["headers"]["task"] == "recommender.look_candidates"
        assert json.loads(base64.b64decode(messages[0]["body"]))[0] == [[outfit["product"].pk]]
        refresh([outfit["product"].pk])  # what that task does
        from django.core.cache import cache

        cache.clear()
        look_for(outfit["product"])  # read from the lists: nothing sent
        look_for(outfit["product"], max_price="100")  # a price filter is always live: nothing either
        assert client.llen(queue) == 1
    finally:
        use_broker(*previous)
        client.flushdb()
