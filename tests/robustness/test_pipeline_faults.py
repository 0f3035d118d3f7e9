"""Pipeline faults: a model error (a swapped-in detector that raises), a Celery worker killed with SIGKILL in
the middle of an analysis (real worker, real Redis), and Redis down while a product is uploaded."""
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection

from catalog.models import Product, ProductImage
from recommender import pipeline
from recommender.models import DetectedArticle, ImageAnalysis
from recommender.hooks import BROKER_DOWN_MESSAGE
from recommender.tasks import analyse_image
from robust_celery import use_broker
from robust_inputs import jpeg
from robust_parts import FAKE_PIPELINE, FailingDetector

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
REDIS_DB = 13  # the recommender's worker tests use 14
BROKER = f"redis://127.0.0.1:6379/{REDIS_DB}"
# Several test runs may share this Redis (other sessions, CI jobs): every key of this run carries its own prefix,
# so no worker consumes another run's messages and the clean-up deletes only this run's keys (never FLUSHDB).
KEYPREFIX = f"btl-robust-{os.getpid()}:"
TRANSPORT_OPTIONS = {"global_keyprefix": KEYPREFIX}


def delete_run_keys():
    client = redis.Redis.from_url(BROKER)
    for key in client.scan_iter(match=f"{KEYPREFIX}*", count=500):
        client.delete(key)


def queue_drained():
    client = redis.Redis.from_url(BROKER)
    return client.llen(f"{KEYPREFIX}celery") == 0 and client.hlen(f"{KEYPREFIX}unacked") == 0


def outfit_with_image(content=None):
    from django.core.files.base import ContentFile

    product = Product.objects.create(sku=f"LOOK-{Product.objects.count() + 1}", name="Street look",
                                     master_category="Outfit", gender="Women", price="0")
    image = ProductImage(product=product, is_primary=True)
    image.file = ContentFile(content or jpeg((120, 200)), name="look.jpg")
    image.save()
    return product, image


# --------------------------------------------------------------------------------------------------
# A model error


@pytest.mark.django_db
def test_a_model_error_fails_the_analysis_visibly_and_it_can_be_run_again(settings, admin_client):
    settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": "catalog.adapter.CatalogAdapter", "PIPELINE": {**FAKE_PIPELINE, "detector": "robust_parts.FailingDetector"}}
    pipeline.reset()
    try:
        _, image = outfit_with_image()
        outcome = analyse_image.delay(image.pk).get()
        analysis = ImageAnalysis.objects.get(image=image)
        assert outcome["status"] == "failed" and analysis.status == "failed"
        assert analysis.error == f"pipeline error: RuntimeError: {FailingDetector.MESSAGE}"
        assert analysis.attempts == 1 and analysis.finished_at and analysis.articles.count() == 0

        # Visible in the admin: the failed filter, the analysis page and the product image page.
        listing = admin_client.get("/admin/recommender/imageanalysis/?status__exact=failed")
        assert listing.status_code == 200 and [a.pk for a in listing.context["cl"].result_list] == [analysis.pk]
        for url in (f"/admin/recommender/imageanalysis/{analysis.pk}/change/",
                    f"/admin/catalog/productimage/{image.pk}/change/"):
            page = admin_client.get(url)
            assert page.status_code == 200 and FailingDetector.MESSAGE in page.content.decode(), url

        # The model is repaired; staff re-run the analysis from the admin.
        settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": "catalog.adapter.CatalogAdapter", "PIPELINE": dict(FAKE_PIPELINE)}
        pipeline.reset()
        response = admin_client.post("/admin/recommender/imageanalysis/",
                                     {"action": "reanalyse", "_selected_action": [analysis.pk]}, follow=True)
        assert response.status_code == 200 and "1 image(s) sent for analysis" in response.content.decode()
        analysis.refresh_from_db()
        assert analysis.status == "done" and analysis.error == "" and analysis.attempts == 2
        assert sorted(analysis.articles.values_list("category", flat=True)) == ["footwear", "top"]
    finally:
        pipeline.reset()


# --------------------------------------------------------------------------------------------------
# A worker killed with SIGKILL in the middle of an analysis


class Workers:
    """Celery workers started for one test (``robust_worker_settings``), all stopped at the end."""

    def __init__(self, settings, tmp_path):
        db = connection.settings_dict
        self.tmp_path = tmp_path
        self.marker = tmp_path / "slow-once"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "robust_worker_settings",
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "CELERY_BROKER_URL": BROKER,
            "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
                            f"{db['PORT'] or 5432}/{db['NAME']}",
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "DB_CONN_MAX_AGE": "0",
            "PYTHONUNBUFFERED": "1",
            "BTL_SLOW_MARKER": str(self.marker),
            "BTL_KEYPREFIX": KEYPREFIX,
        }
        self.processes = []
        self.logs = []

    def start(self, visibility_timeout=600, restore_every=None):
        """A worker; ``restore_every`` (s): how often it gives timed-out unacknowledged messages back."""
        env = {**self.env, "BTL_VISIBILITY_TIMEOUT": str(visibility_timeout)}
        if restore_every:
            env.update(BTL_RESTORE_INTERVAL=str(restore_every), BTL_RESTORE_THROTTLE="1")
        log = open(self.tmp_path / f"worker-{len(self.processes)}.log", "w+")
        process = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "celery"), "-A", "shop", "worker", "--loglevel=INFO", "--concurrency=1",
             "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--hostname", f"crash-{os.getpid()}-{len(self.processes)}@%h"],
            cwd=ROOT, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.processes.append(process)
        self.logs.append(log)
        return process

    def log_tail(self):
        text = []
        for log in self.logs:
            log.flush()
            log.seek(0)
            text.append(log.read()[-3000:])
        return "\n----\n".join(text)

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout=20)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    try:
                        os.killpg(process.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    process.wait(timeout=10)
        for log in self.logs:
            log.close()


@pytest.fixture
def workers(settings, tmp_path):
    delete_run_keys()
    saved = use_broker(False, BROKER, TRANSPORT_OPTIONS)
    started = Workers(settings, tmp_path)
    try:
        yield started
    finally:
        use_broker(*saved)
        started.stop()
        delete_run_keys()


def wait_until(condition, what, workers, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"{what} did not happen within {timeout} s; worker logs:\n{workers.log_tail()}")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kill", ["pool-child", "whole-worker"])
def test_a_worker_killed_mid_analysis_redelivers_and_stores_each_article_once(workers, kill):
    first = workers.start(visibility_timeout=600 if kill == "pool-child" else 3)
    _, image = outfit_with_image()  # the commit sends analyse_image to Redis
    started = Path(str(workers.marker) + ".started")
    wait_until(started.exists, "the slow analysis starting", workers)
    analysis = ImageAnalysis.objects.get(image=image)
    assert analysis.status == "running" and analysis.attempts == 1

    if kill == "pool-child":
        # The process running the task dies; its parent sees the worker lost and requeues the message
        # (acks_late + reject_on_worker_lost).
        os.kill(int(started.read_text()), signal.SIGKILL)
    else:
        # The whole worker dies (machine crash): the unacknowledged message comes back to a new worker after
        # the broker's visibility timeout.
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        # The new worker brings the message back once it is older than its visibility timeout; that timeout
        # must also exceed the new worker's own (cold-start) analysis, or the message is restored a third time
        # while being analysed — 10 s leaves room on a loaded 2-core machine.
        workers.start(visibility_timeout=10, restore_every=2)

    def finished():
        current = ImageAnalysis.objects.get(image=image)
        return current if current.status in ("done", "failed") else None

    analysis = wait_until(finished, "the redelivered analysis", workers)
    assert analysis.status == "done", analysis.error
    assert analysis.attempts == 2
    articles = DetectedArticle.objects.filter(analysis__image=image)
    assert sorted(articles.values_list("category", flat=True)) == ["footwear", "top"]  # no duplicates
    wait_until(queue_drained, "the message being acknowledged",
               workers, timeout=60)


# --------------------------------------------------------------------------------------------------
# Redis down while a product is uploaded


@pytest.mark.django_db(transaction=True)
def test_redis_down_during_an_upload_keeps_the_product_and_analyse_pending_catches_up(fake_pipeline, staff_api,
                                                                                         caplog, capsys):
    saved = use_broker(False, "redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        with caplog.at_level(logging.WARNING, logger="recommender"):
            response = staff_api.post("/api/products/", {
                "sku": "DOWN-1", "name": "Blue shirt", "gender": "Men", "sub_category": "Topwear",
                "article_type": "Shirts", "price": "25.00",
                "image": SimpleUploadedFile("shirt.jpg", jpeg((120, 200)), content_type="image/jpeg"),
            }, format="multipart")
    finally:
        use_broker(*saved)
    assert response.status_code == 201, response.content
    product = Product.objects.get(sku="DOWN-1")
    image = product.images.get()
    analysis = ImageAnalysis.objects.get(image=image)
    assert analysis.status == "queued" and analysis.attempts == 0
    warnings = [record.getMessage() for record in caplog.records if record.msg == BROKER_DOWN_MESSAGE]
    assert len(warnings) == 1 and f"image {image.pk} stays queued" in warnings[0]
    assert "manage.py analyse --pending" in warnings[0]

    call_command("analyse", "--pending", "--no-progress")
    out = capsys.readouterr().out
    analysis.refresh_from_db()
    assert analysis.status == "done" and analysis.attempts == 1, analysis.error
    assert "1 done" in out or "done: 1" in out or "1 analysed" in out, out
    own = analysis.articles.get(is_inventory=True)
    assert own.category == "top" and own.product_id == product.pk


@pytest.mark.django_db(transaction=True)
def test_reanalyse_with_the_broker_down_says_so_and_keeps_the_image_queued(admin_client, fake_pipeline, caplog):
    _, image = outfit_with_image()  # eager: analysed now
    analysis = ImageAnalysis.objects.get(image=image)
    assert analysis.status == "done"
    saved = use_broker(False, "redis://127.0.0.1:1/0")
    try:
        with caplog.at_level(logging.WARNING, logger="recommender"):
            response = admin_client.post("/admin/recommender/imageanalysis/",
                                         {"action": "reanalyse", "_selected_action": [analysis.pk]}, follow=True)
    finally:
        use_broker(*saved)
    assert response.status_code == 200 and "analyse --pending" in response.content.decode()
    assert ImageAnalysis.objects.get(image=image).status == "queued"
    assert any(record.msg == BROKER_DOWN_MESSAGE for record in caplog.records)
    call_command("analyse", "--pending", "--no-progress")
    assert ImageAnalysis.objects.get(image=image).status == "done"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_poison_image_that_kills_its_worker_every_time_is_failed_not_retried_forever(workers):
    from robust_parts import PoisonImageDetector

    # The worker runs with the default BUY_THE_LOOK["TASK_MAX_INTERRUPTIONS"] = 3.
    workers.env["BTL_DETECTOR"] = "robust_parts.PoisonImageDetector"
    workers.start()
    _, poison = outfit_with_image(jpeg(PoisonImageDetector.POISON_SIZE, seed=1))
    _, healthy = outfit_with_image(jpeg((120, 200), seed=2))  # queued behind it

    def finished(image):
        return lambda: ImageAnalysis.objects.filter(image=image, status__in=["done", "failed"]).first()

    analysis = wait_until(finished(poison), "the poison image's analysis ending", workers)
    assert analysis.status == "failed" and "stopped its worker 3 times in a row" in analysis.error
    assert analysis.attempts == 3 and analysis.articles.count() == 0
    assert wait_until(finished(healthy), "the next image's analysis", workers).status == "done"
    wait_until(queue_drained, "the queue draining",
               workers, timeout=60)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_hung_model_is_stopped_by_the_time_limit_and_the_analysis_failed(workers, settings):
    # The shop runs with BUY_THE_LOOK["TASK_TIME_LIMIT"] = 3: the worker, and this process, which sends the task
    # (Celery's message carries the sender's limits).
    workers.env.update(BTL_DETECTOR="robust_parts.HangingDetector", BTL_TIME_LIMIT="3")
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "TASK_TIME_LIMIT": 3}
    assert (analyse_image.soft_time_limit, analyse_image.time_limit) == (3, 63)  # read when the task is sent
    workers.start()
    _, image = outfit_with_image()
    analysis = wait_until(lambda: ImageAnalysis.objects.filter(image=image, status__in=["done", "failed"]).first(),
                          "the hung analysis being stopped", workers)
    assert analysis.status == "failed" and analysis.attempts == 1
    assert analysis.error == "the analysis took longer than 3 s (BUY_THE_LOOK['TASK_TIME_LIMIT']) and was stopped"
