"""Half-precision HNSW indexes: ``manage.py halfvec_indexes`` and ``BUY_THE_LOOK["HALFVEC"]``."""
import io

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from look_factories import bulk_inventory, random_unit
from recommender.looks import look_for
from recommender.management.commands.halfvec_indexes import existing_indexes
from recommender.queries import configure_search

# Index DDL after the test's own inserts needs them committed (deferred foreign keys), so these tests commit;
# every test leaves the float indexes as the migrations made them.
pytestmark = pytest.mark.django_db(transaction=True)

HALFVEC = {"recommender_inventory_halfvec", "recommender_halfvec_top", "recommender_halfvec_footwear"}
FLOAT = {"recommender_inventory_hnsw", "recommender_hnsw_top", "recommender_hnsw_footwear"}


@pytest.fixture(autouse=True)
def float_indexes_afterwards():
    yield
    call_command("halfvec_indexes", "--restore", stdout=io.StringIO())


def top_row(product, k=8):
    return next(row for row in look_for(product, k=k) if row.category == "top")


def look_statement_plan(product):
    """EXPLAIN of the look statement ``look_for`` sends, with sequential scans and sorts discouraged (the
    test's table is small enough that the planner would rightly scan it)."""
    with CaptureQueriesContext(connection) as captured:
        look_for(product)
    sql = next(query["sql"] for query in captured.captured_queries if "UNION ALL" in query["sql"]
               or "colour_similarity" in query["sql"])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        configure_search(cursor, 18)
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_halfvec_indexes_serve_the_look_query_with_full_precision_distances(look, rng, settings):
    query = look["top"].embedding
    embeddings = [random_unit(rng) for _ in range(300)]
    products = bulk_inventory([{"category": "top", "embedding": e} for e in embeddings])
    by_pk = {product.pk: embedding for product, embedding in zip(products, embeddings)}
    before = [card.pk for card in top_row(look["product"]).recommendations]
    assert "recommender_hnsw_top" in look_statement_plan(look["product"])

    out = io.StringIO()
    call_command("halfvec_indexes", stdout=out)
    assert HALFVEC <= existing_indexes() and FLOAT <= existing_indexes()
    assert "turn BUY_THE_LOOK[\"HALFVEC\"] on" in out.getvalue()

    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "HALFVEC": True}
    plan = look_statement_plan(look["product"])
    assert "recommender_halfvec_top" in plan and "recommender_hnsw_top" not in plan
    row = top_row(look["product"])
    after = [card.pk for card in row.recommendations]
    assert len(set(after) & set(before)) >= 7
    for card in row.recommendations:  # the distance shown is the float one, not the half-precision one
        assert card.distance == pytest.approx(1 - float(np.dot(query, by_pk[card.pk])), abs=1e-5)

    call_command("halfvec_indexes", "--drop-float", stdout=io.StringIO())
    assert HALFVEC <= existing_indexes() and not FLOAT & existing_indexes()
    assert [card.pk for card in top_row(look["product"]).recommendations] == after


def test_check_names_the_missing_indexes_of_the_chosen_precision(look, settings):
    from recommender.checks import check_vector_indexes

    assert check_vector_indexes() == []
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "HALFVEC": True}
    [warning] = check_vector_indexes()
    assert warning.id == "recommender.W022" and "recommender_halfvec_top" in warning.msg
    assert "halfvec_indexes" in warning.hint
    call_command("halfvec_indexes", "--drop-float", stdout=io.StringIO())
    assert check_vector_indexes() == []
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "HALFVEC": False}
    [warning] = check_vector_indexes()
    assert "recommender_hnsw_top" in warning.msg and "--restore" in warning.hint


def test_drop_float_is_refused_while_the_query_still_searches_them(look):
    with pytest.raises(CommandError, match="HALFVEC"):
        call_command("halfvec_indexes", "--drop-float", stdout=io.StringIO())
    assert FLOAT <= existing_indexes() and not HALFVEC & existing_indexes()


def test_restore_brings_back_the_float_indexes_and_drops_the_halfvec_ones(look, settings):
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "HALFVEC": True}
    call_command("halfvec_indexes", "--drop-float", stdout=io.StringIO())
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "HALFVEC": False}
    call_command("halfvec_indexes", "--restore", stdout=io.StringIO())
    assert FLOAT <= existing_indexes() and not HALFVEC & existing_indexes()


def test_twins_built_with_other_parameters_are_rebuilt_with_the_models(look):
    """After a migration changes the HNSW build parameters (0006: ef_construction 64 -> 128), running the command
    again rebuilds the halfvec twins the old way built, and leaves current ones alone."""
    from recommender.management.commands.halfvec_indexes import build_parameters
    from recommender.models import HNSW_EF_CONSTRUCTION, HNSW_M

    call_command("halfvec_indexes", stdout=io.StringIO())
    current = {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION}
    assert build_parameters("recommender_halfvec_top") == current
    assert build_parameters("recommender_hnsw_top") == current  # the migrations' float index
    with connection.cursor() as cursor:  # the twin as an older schema built it
        cursor.execute("DROP INDEX recommender_halfvec_top")
        cursor.execute("CREATE INDEX recommender_halfvec_top ON recommender_detectedarticle USING hnsw "
                       "((embedding::halfvec(256)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 32) "
                       "WHERE category = 'top' AND is_active AND is_inventory")
    out = io.StringIO()
    call_command("halfvec_indexes", stdout=out)
    assert "rebuilding recommender_halfvec_top" in out.getvalue()
    assert "recommender_halfvec_footwear exists" in out.getvalue()
    assert build_parameters("recommender_halfvec_top") == current
    assert HALFVEC <= existing_indexes() and "recommender_halfvec_top_rebuilt" not in existing_indexes()
