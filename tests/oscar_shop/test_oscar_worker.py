"""The Oscar shop with a real Celery worker on Redis: images saved in Oscar are analysed by the worker
(``celery -A tests.oscar_shop.celery_app worker``, the shop's own Celery app) and the widget shows the result."""
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from django.db import connection, transaction

from oscar_factories import MEN_LOOK, NOT_AN_IMAGE, TSHIRT, Catalogue, missing_weights, use_broker
from recommender.models import DetectedArticle, ImageAnalysis

ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = 13  # the main suite's worker test uses 14
BROKER = f"redis://127.0.0.1:6379/{REDIS_DB}"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(tmp_path):
    """A worker of the Oscar shop's Celery app on Redis db 13, reading the pytest database and media folder;
    this process sends its tasks there while the fixture lasts."""
    from django.conf import settings

    redis.Redis.from_url(BROKER).flushdb()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.oscar_shop.settings",
        "PYTHONPATH": str(ROOT),
        "CELERY_BROKER_URL": BROKER,
        "OSCAR_SHOP_DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
                                   f"{db['PORT'] or 5432}/{db['NAME']}",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    log = open(tmp_path / "worker.log", "w+")
    process = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "celery"), "-A", "tests.oscar_shop.celery_app", "worker", "--loglevel=INFO",
         "--concurrency=1", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "--hostname", f"oscar-test-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    saved = use_broker(False, BROKER)
    try:
        yield {"process": process, "log": log}
    finally:
        use_broker(*saved)
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()
        redis.Redis.from_url(BROKER).flushdb()


def wait_for(image, worker, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        analysis = ImageAnalysis.objects.filter(image_id=image.pk).first()
        if analysis is not None and analysis.status in ("done", "failed", "skipped"):
            return analysis
        if worker["process"].poll() is not None:
            break
        time.sleep(0.5)
    worker["log"].seek(0)
    pytest.fail(f"image {image.pk} not analysed within {timeout} s; worker log:\n{worker['log'].read()[-4000:]}")


@pytest.mark.skipif(bool(missing_weights()), reason=f"model weights missing: {missing_weights()}")
def test_a_worker_analyses_oscar_images_and_the_widget_shows_them(worker, client):
    catalogue = Catalogue()
    with transaction.atomic():
        look = catalogue.product("Men's street look", "Looks", gender="Men", photo=MEN_LOOK)
        tee = catalogue.product("Men's sports tee", "T-shirts", gender="Men", colour="Black", price="19.99",
                                photo=TSHIRT)
        broken = catalogue.product("Broken upload", "T-shirts", gender="Men", photo_bytes=NOT_AN_IMAGE)
        queued = ImageAnalysis.objects.count()
    assert queued == 0  # nothing is sent before the commit
    analysis = wait_for(look.images.get(), worker)
    assert analysis.status == "done" and analysis.is_full_shot, analysis.error
    assert {"top", "footwear"} <= set(analysis.articles.values_list("category", flat=True))
    assert wait_for(tee.images.get(), worker).status == "done"
    failed = wait_for(broken.images.get(), worker)
    assert failed.status == "failed" and "not an image" in failed.error
    assert DetectedArticle.objects.get(product_id=tee.pk, is_inventory=True).category == "top"

    html = client.get(look.get_absolute_url()).content.decode()
    assert f'data-product="{tee.pk}"' in html and "€19.99" in html
    assert not re.search(rf'data-product="{broken.pk}"', html)
