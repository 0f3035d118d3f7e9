"""HNSW article indexes rebuilt with ef_construction 128 (was 64; m stays 16).

At 1M articles this takes recall@10 from 0.985 to 0.996-0.998 and the queries under 0.5 recall from 3-4 to 0-2 of
1,000, for a look query about 20 % slower and 1.7x the build time (docs/benchmarks-1m-efc128.md,
docs/benchmarks-1m.md). Each index is built beside the
old one (``CREATE INDEX CONCURRENTLY`` under a temporary name), then swapped in: the shop keeps answering from the
old graph while the new one builds (about 13 minutes for all six at 1M articles; seconds for a small catalogue).
An index a shop dropped on purpose (``halfvec_indexes --drop-float``) is not brought back; run
``manage.py halfvec_indexes`` afterwards to rebuild the half-precision twins with the new parameters.
"""
from django.db import migrations, models
from pgvector.django import HnswIndex

CATEGORIES = ["top", "bottom", "dress", "footwear", "bag"]


def indexes(ef_construction):
    common = dict(fields=["embedding"], m=16, ef_construction=ef_construction, opclasses=["vector_cosine_ops"])
    return [HnswIndex(name="recommender_inventory_hnsw", condition=models.Q(is_inventory=True, is_active=True),
                      **common),
            *[HnswIndex(name=f"recommender_hnsw_{category}",
                        condition=models.Q(is_inventory=True, is_active=True, category=category), **common)
              for category in CATEGORIES]]


def rebuild(ef_construction):
    def run(apps, schema_editor):
        model = apps.get_model("recommender", "DetectedArticle")
        quote = schema_editor.quote_name
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [model._meta.db_table])
            present = {row[0] for row in cursor.fetchall()}
        for index in indexes(ef_construction):
            fresh = f"{index.name}_rebuilt"
            if index.name not in present:
                if fresh in present:  # a run stopped between the drop and the rename: finish it
                    schema_editor.execute(f"ALTER INDEX {quote(fresh)} RENAME TO {quote(index.name)}")
                continue
            sql = str(index.create_sql(model, schema_editor, concurrently=True))
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(fresh)}")
            schema_editor.execute(sql.replace(quote(index.name), quote(fresh), 1))
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(index.name)}")
            schema_editor.execute(f"ALTER INDEX {quote(fresh)} RENAME TO {quote(index.name)}")
    return run


class Migration(migrations.Migration):
    atomic = False  # CREATE / DROP INDEX CONCURRENTLY

    dependencies = [
        ("recommender", "0005_article_kind"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                *[migrations.RemoveIndex(model_name="detectedarticle", name=index.name) for index in indexes(64)],
                *[migrations.AddIndex(model_name="detectedarticle", index=index) for index in indexes(128)],
            ],
            database_operations=[migrations.RunPython(rebuild(128), rebuild(64))],
        ),
    ]
