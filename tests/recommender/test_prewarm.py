"""``manage.py prewarm_indexes``: the look query's indexes and the article table loaded with pg_prewarm."""
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from recommender.conf import settings as look_settings
from recommender.models import DetectedArticle
from recommender.prewarm import prewarm, searched_indexes

pytestmark = pytest.mark.django_db


def relation_blocks(relation):
    """Blocks of ``relation`` (what pg_prewarm reports loading)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::int", [relation])
        return cursor.fetchone()[0]


def test_prewarm_loads_each_category_index_and_the_table_not_the_all_categories_one(look):
    result = prewarm()
    names = [name for name, *_ in result.relations]
    assert names == [f"recommender_hnsw_{category}" for category in look_settings.CATEGORIES
                     if f"recommender_hnsw_{category}" in names] + [DetectedArticle._meta.db_table]
    assert {f"recommender_hnsw_{category}" for category in ("top", "bottom", "footwear")} <= set(names)
    assert "recommender_inventory_hnsw" not in names  # searched by photo without a category only
    for name, mode, mb, _ in result.relations:
        assert mode == "buffer"  # the test database is far smaller than shared_buffers
        assert mb == round(relation_blocks(name) * 8192 / 2**20, 1)
    assert result.as_dict()["into_page_cache_mb"] == 0


def test_halfvec_setting_prewarms_only_halfvec_indexes_that_exist(look, settings):
    settings.BUY_THE_LOOK = {**getattr(settings, "BUY_THE_LOOK", {}), "HALFVEC": True}
    assert searched_indexes() == []  # the halfvec indexes were not made: nothing of them to load
    result = prewarm(table=False)
    assert result.relations == []


def test_command_reports_what_it_loaded_and_names_a_bad_alias(look):
    out = io.StringIO()
    call_command("prewarm_indexes", stdout=out)
    text = out.getvalue()
    assert "recommender_hnsw_top:" in text and "recommender_detectedarticle:" in text
    assert "into shared_buffers" in text
    out = io.StringIO()
    call_command("prewarm_indexes", "--indexes-only", stdout=out)
    assert "recommender_detectedarticle:" not in out.getvalue()
    with pytest.raises(CommandError, match="--database 'nope': no such database alias"):
        call_command("prewarm_indexes", "--database", "nope")
