"""The product adapter's facts next to each vector, and the image's product and file digest on its analysis."""
import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery

from recommender.conf import settings as look_settings

PRODUCT_MODEL = look_settings.adapter_class.product_model
IMAGE_MODEL = look_settings.adapter_class.image_model
IMAGE_PRODUCT_FIELD = look_settings.adapter_class.image_product_field


def fill_products(apps, schema_editor):
    """Analyses made before this migration: their image's product."""
    ImageAnalysis = apps.get_model("recommender", "ImageAnalysis")
    Image = apps.get_model(IMAGE_MODEL)
    ImageAnalysis.objects.filter(product__isnull=True).update(
        product_id=Subquery(Image.objects.filter(pk=OuterRef("image_id")).values(f"{IMAGE_PRODUCT_FIELD}_id")[:1])
    )


class Migration(migrations.Migration):

    dependencies = [
        migrations.swappable_dependency(PRODUCT_MODEL),
        migrations.swappable_dependency(IMAGE_MODEL),
        ('recommender', '0002_hnsw_per_category'),
    ]

    operations = [
        migrations.AddField(
            model_name='detectedarticle',
            name='article_type',
            field=models.CharField(blank=True, help_text="The product's kind of article.", max_length=64),
        ),
        migrations.AddField(
            model_name='imageanalysis',
            name='image_version',
            field=models.CharField(blank=True, help_text="The adapter's version of the file analysed.", max_length=255),
        ),
        migrations.AddField(
            model_name='imageanalysis',
            name='product',
            field=models.ForeignKey(blank=True, help_text="The image's product when it was last queued or analysed.", null=True, on_delete=django.db.models.deletion.CASCADE, related_name='look_analyses', to=PRODUCT_MODEL),
        ),
        migrations.AddField(
            model_name='imageanalysis',
            name='sha256',
            field=models.CharField(blank=True, db_index=True, help_text='Digest of the file content analysed (finds the same photo on other products).', max_length=64),
        ),
        migrations.AlterField(
            model_name='detectedarticle',
            name='base_colour',
            field=models.CharField(blank=True, help_text="The product's main colour, lower case.", max_length=32),
        ),
        migrations.AlterField(
            model_name='detectedarticle',
            name='is_active',
            field=models.BooleanField(default=True, help_text='The product can be bought now.', verbose_name='available'),
        ),
        migrations.AlterField(
            model_name='detectedarticle',
            name='price',
            field=models.DecimalField(blank=True, decimal_places=2, max_digits=12, null=True),
        ),
        migrations.RunPython(fill_products, migrations.RunPython.noop, elidable=True),
    ]
