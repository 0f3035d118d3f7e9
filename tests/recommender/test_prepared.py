"""The product page's look statement as a prepared statement (``recommender.prepared``), on real PostgreSQL."""
import threading
import uuid

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from bench.ab import row_signature as shown
from recommender import prepared
from recommender.looks import look_for

from look_factories import add_article, bulk_inventory, make_analysis, make_image, make_product, png_bytes, random_unit


def executions():
    """{statement name: executions} of this connection's prepared look statements (``pg_prepared_statements``)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, generic_plans + custom_plans FROM pg_prepared_statements "
                       "WHERE statement LIKE %s", ['%"look_hits"%'])
        return dict(cursor.fetchall())




def second_look(rng):
    product = make_product(category="", gender="Men", outfit=True, colour="")
    analysis = make_analysis(make_image(product, content=png_bytes(300, 600, seed=2)), full_shot=True)
    add_article(analysis, "top", random_unit(rng), box=(0.25, 0.15, 0.75, 0.5))
    add_article(analysis, "footwear", random_unit(rng), box=(0.3, 0.85, 0.45, 0.98), confidence=0.8)
    return product


@pytest.mark.django_db
def test_one_statement_prepared_per_connection_and_run_for_every_look(look, rng):
    bulk_inventory([{"category": category, "embedding": random_unit(rng)}
                    for category in ("top", "footwear") for _ in range(10)])
    other = second_look(rng)
    before = executions()
    rows = [look_for(look["product"]), look_for(other), look_for(look["product"]), look_for(other)]
    after = executions()
    assert len(set(after) - set(before)) <= 1  # at most one new statement (none when an earlier test prepared it)
    assert sum(after.values()) - sum(before.values()) == 4  # every look ran the prepared statement
    assert shown(rows[0]) == shown(rows[2]) and shown(rows[1]) == shown(rows[3])
    assert shown(rows[0]) != shown(rows[1])  # the product's id is a parameter: each look its own rows
    assert [row.category for row in rows[0]] == ["top", "footwear"]


@pytest.mark.django_db
def test_the_same_rows_as_without_and_nothing_prepared_when_off(look, rng, settings):
    bulk_inventory([{"category": category, "embedding": random_unit(rng), "gender": gender}
                    for category in ("top", "footwear") for gender in ("Men", "Women", "Unisex") for _ in range(6)])
    on = shown(look_for(look["product"])), shown(look_for(look["product"], k=3))
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "PREPARED_STATEMENTS": False}
    before = executions()
    off = shown(look_for(look["product"])), shown(look_for(look["product"], k=3))
    assert executions() == before
    assert on == off and len(on[1][0][2]) == 3


@pytest.mark.django_db
def test_the_prepared_statement_is_counted_like_any_query(look, rng):
    bulk_inventory([{"category": category, "embedding": random_unit(rng)}
                    for category in ("top", "footwear") for _ in range(8)])
    look_for(look["product"])
    with CaptureQueriesContext(connection) as queries:
        rows = look_for(look["product"])
    assert rows and any('"look_hits"' in query["sql"] for query in queries.captured_queries)
    assert len(queries.captured_queries) == 2  # the look statement and the cards


@pytest.mark.django_db
def test_settings_changes_are_seen_by_the_compiled_statement(look, rng, settings):
    bulk_inventory([{"category": category, "embedding": random_unit(rng)}
                    for category in ("top", "footwear") for _ in range(8)])
    assert [row.category for row in look_for(look["product"])] == ["top", "footwear"]
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "ARTICLE_FLOORS": {"footwear": 0.85}}  # the shoes are 0.8
    assert [row.category for row in look_for(look["product"])] == ["top"]
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "K": 2}
    assert [len(row.recommendations) for row in look_for(look["product"])] == [2]


@pytest.mark.django_db(transaction=True)
def test_a_statement_compiled_on_one_thread_runs_on_the_connection_of_another(rng):
    product = second_look(rng)
    bulk_inventory([{"category": category, "embedding": random_unit(rng)}
                    for category in ("top", "footwear") for _ in range(8)])
    expected = shown(look_for(product))  # compiled here
    main = connection.connection
    found, errors = [], []

    def page():
        try:
            found.append(shown(look_for(product)))
            found.append(connections["default"].connection is not main)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=page)
    thread.start()
    thread.join()
    assert not errors and found == [expected, True]


def test_a_second_key_of_each_key_type():
    key = uuid.uuid4()
    assert prepared._other_key(41) == 42 and prepared._other_key("sku-1") == "sku-1-"
    assert prepared._other_key(key) != key and isinstance(prepared._other_key(key), uuid.UUID)
    assert prepared._other_key(True) is None and prepared._other_key(4.5) is None
