"""Colours read from each article's own pixels (``ml.colour``), next to its vector.

Articles analysed before this migration have no colour (``NULL``); ``manage.py reindex`` reads them. The
columns have database defaults, so rows written by other tools (COPY, raw SQL) that do not know them still insert.
"""
import pgvector.django.vector
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('recommender', '0003_adapter_fields'),
    ]

    operations = [
        migrations.AddField(
            model_name='detectedarticle',
            name='colour',
            field=pgvector.django.vector.VectorField(
                blank=True, dimensions=26, editable=False, null=True,
                help_text="Colour descriptor: square roots of the probabilities of ml.colour.WORDS (unit length)."),
        ),
        migrations.AddField(
            model_name='detectedarticle',
            name='colour_name',
            field=models.CharField(blank=True, max_length=32, default="", db_default="",
                                   help_text="Main colour read from the article's pixels, in the catalogue's words."),
        ),
        migrations.AddField(
            model_name='detectedarticle',
            name='colours',
            field=models.JSONField(blank=True, default=list, db_default=[], editable=False,
                                   help_text="Main colours read from the article's pixels: [[name, share], …]."),
        ),
    ]
