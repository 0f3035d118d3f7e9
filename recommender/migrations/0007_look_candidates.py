"""Precomputed candidates of look rows (``LookCandidates``) and when each article last changed (``changed_at``).

``changed_at`` is the start of the transaction that inserted the row (its default) or last updated it (a trigger,
so an ``UPDATE`` made by the ORM's ``update()``, raw SQL or another program counts too). Adding the column with a
stable default does not rewrite the table; existing rows read the time of this migration. A candidate list goes
with its article by the database's own ``ON DELETE CASCADE`` (deleting articles stays one statement).
"""
import django.contrib.postgres.fields
import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models

TRIGGER = """
CREATE FUNCTION recommender_article_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER recommender_article_changed BEFORE UPDATE ON recommender_detectedarticle
    FOR EACH ROW EXECUTE FUNCTION recommender_article_changed();
"""
DROP_TRIGGER = """
DROP TRIGGER IF EXISTS recommender_article_changed ON recommender_detectedarticle;
DROP FUNCTION IF EXISTS recommender_article_changed();
"""


class Migration(migrations.Migration):

    dependencies = [
        ("recommender", "0006_hnsw_ef_construction_128"),
    ]

    operations = [
        migrations.AddField(
            model_name="detectedarticle",
            name="changed_at",
            field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now(), editable=False),
        ),
        migrations.RunSQL(TRIGGER, DROP_TRIGGER),
        migrations.AddIndex(
            model_name="detectedarticle",
            index=models.Index(condition=models.Q(("is_inventory", True)), fields=["category", "changed_at"],
                               name="recommender_article_changed"),
        ),
        migrations.CreateModel(
            name="LookCandidates",
            fields=[
                ("article", models.OneToOneField(on_delete=django.db.models.deletion.DO_NOTHING, primary_key=True,
                                                 related_name="look_candidates", serialize=False,
                                                 db_constraint=False, to="recommender.detectedarticle")),
                ("ids", django.contrib.postgres.fields.ArrayField(
                    base_field=models.BigIntegerField(), help_text="Inventory article ids, nearest first.", size=None)),
                ("inputs", models.CharField(max_length=300, help_text="The article's category|gender|embedder the list "
                                                                      "was computed for (another: the list is not used).")),
                ("since", models.DateTimeField(help_text="Changes made from this time on may be missing from the list.")),
                ("computed_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "verbose_name": "look row candidates",
                "verbose_name_plural": "look row candidates",
            },
        ),
        migrations.RunSQL(
            "ALTER TABLE recommender_lookcandidates ADD CONSTRAINT recommender_lookcandidates_article "
            "FOREIGN KEY (article_id) REFERENCES recommender_detectedarticle (id) ON DELETE CASCADE",
            "ALTER TABLE recommender_lookcandidates DROP CONSTRAINT IF EXISTS recommender_lookcandidates_article",
        ),
    ]
