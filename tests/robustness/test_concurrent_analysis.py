"""The same image analysed by several runs at once (re-analyse clicked twice while a worker runs, a redelivered
message racing the original): the runs serialise on the analysis row, the articles are stored once."""
import threading

import pytest
from django.core.files.base import ContentFile
from django.db import connection

from catalog.models import Product, ProductImage
from recommender.analysis import analyse_product_image
from recommender.models import DetectedArticle, ImageAnalysis
from recommender.hooks import defer_analysis
from robust_inputs import jpeg

RUNS = 8


@pytest.mark.django_db(transaction=True)
def test_simultaneous_runs_store_each_article_once(fake_pipeline):
    product = Product.objects.create(sku="RACE-1", name="Race look", gender="Women", master_category="Outfit",
                                     price="0")
    with defer_analysis():
        image = ProductImage(product=product, is_primary=True)
        image.file = ContentFile(jpeg((120, 200)), name="race.jpg")
        image.save()
    barrier = threading.Barrier(RUNS)
    errors = []

    def run():
        try:
            barrier.wait(timeout=60)
            analyse_product_image(image.pk)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(RUNS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    analysis = ImageAnalysis.objects.get(image=image)
    assert analysis.status == "done" and analysis.attempts == RUNS
    assert sorted(DetectedArticle.objects.filter(analysis=analysis).values_list("category", flat=True)) == \
        ["footwear", "top"]
