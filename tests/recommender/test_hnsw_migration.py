"""Migration 0006 (HNSW indexes rebuilt with ef_construction 128): what it does to a database whose indexes are
older, half-rebuilt, or dropped on purpose."""
import importlib
import io

import pytest
from django.apps import apps
from django.db import connection

from recommender.management.commands.halfvec_indexes import build_parameters, existing_indexes

# Index DDL (CREATE INDEX CONCURRENTLY) cannot run in the test's transaction.
pytestmark = pytest.mark.django_db(transaction=True)

migration = importlib.import_module("recommender.migrations.0006_hnsw_ef_construction_128")
FLOAT = {"recommender_inventory_hnsw", *(f"recommender_hnsw_{c}" for c in migration.CATEGORIES)}


def rebuild():
    with connection.schema_editor(atomic=False) as editor:
        migration.rebuild(128)(apps, editor)


def execute(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)


@pytest.fixture(autouse=True)
def indexes_as_the_migrations_made_them():
    yield
    for name in ("recommender_hnsw_bag", "recommender_hnsw_dress"):
        execute(f"DROP INDEX IF EXISTS {name}_rebuilt")
    if not FLOAT <= existing_indexes():
        from django.core.management import call_command

        call_command("halfvec_indexes", "--restore", stdout=io.StringIO())  # the model's definitions
    rebuild()
    assert all(build_parameters(name) == {"m": 16, "ef_construction": 128} for name in FLOAT)


def test_older_indexes_are_rebuilt_and_current_ones_kept_under_their_names():
    execute("DROP INDEX recommender_hnsw_bag")
    execute("CREATE INDEX recommender_hnsw_bag ON recommender_detectedarticle USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64) WHERE category = 'bag' AND is_active AND is_inventory")
    rebuild()
    assert build_parameters("recommender_hnsw_bag") == {"m": 16, "ef_construction": 128}
    assert FLOAT <= existing_indexes()
    assert not any(name.endswith("_rebuilt") for name in existing_indexes())


def test_a_run_stopped_before_the_rename_is_finished_and_a_dropped_index_stays_dropped():
    execute("ALTER INDEX recommender_hnsw_dress RENAME TO recommender_hnsw_dress_rebuilt")  # stopped after the drop
    execute("DROP INDEX recommender_hnsw_bag")  # as halfvec_indexes --drop-float leaves it
    rebuild()
    present = existing_indexes()
    assert "recommender_hnsw_dress" in present and "recommender_hnsw_dress_rebuilt" not in present
    assert "recommender_hnsw_bag" not in present
