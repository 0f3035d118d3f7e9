"""Two Celery queues: a re-index on the bulk queue never delays the analysis of a new upload.

Two real workers on Redis, as a shop runs them (docs/add-to-your-shop.md, "The worker"): one started with
``-Q looks`` (``ANALYSIS_QUEUE``: new uploads, the admin action, the API), one with ``-Q looks-bulk``
(``BULK_QUEUE``: ``manage.py reindex --queue`` / ``analyse --queue``).
"""
import os
import signal
import subprocess
import time
from io import StringIO
from pathlib import Path

import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError

from look_factories import worker_env, make_analysis, make_image, make_product, png_bytes, use_broker
from recommender.models import ImageAnalysis

ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = 13  # a database number nothing else of the project uses (test_worker.py uses 14)
BROKER = f"redis://127.0.0.1:6379/{REDIS_DB}"
UPLOADS, BULK = "looks", "looks-bulk"


def start_worker(name, queue, settings, tmp_path):
    env = worker_env(BROKER, settings.MEDIA_ROOT)
    log = open(tmp_path / f"{name}.log", "w+")
    process = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "celery"), "-A", "shop", "worker", "-Q", queue, "--loglevel=INFO",
         "--concurrency=1", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "--hostname", f"{name}-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    return {"name": name, "process": process, "log": log}


def stop_worker(worker):
    os.killpg(worker["process"].pid, signal.SIGTERM)
    try:
        worker["process"].wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(worker["process"].pid, signal.SIGKILL)
        worker["process"].wait(timeout=10)
    worker["log"].close()


def log_of(worker):
    worker["log"].flush()
    worker["log"].seek(0)
    return worker["log"].read()


@pytest.fixture
def two_workers(settings, tmp_path):
    """A worker on the uploads queue and one on the bulk queue, both on Redis db 13."""
    redis.Redis.from_url(BROKER).flushdb()
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "ANALYSIS_QUEUE": UPLOADS, "BULK_QUEUE": BULK}
    workers = {"uploads": start_worker("uploads", UPLOADS, settings, tmp_path),
               "bulk": start_worker("bulk", BULK, settings, tmp_path)}
    saved = use_broker(False, BROKER)
    try:
        yield workers
    finally:
        use_broker(*saved)
        for worker in workers.values():
            stop_worker(worker)
        redis.Redis.from_url(BROKER).flushdb()


def wait_done(image, workers, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        analysis = ImageAnalysis.objects.filter(image=image).first()
        if analysis is not None and analysis.status in ("done", "failed", "skipped"):
            return analysis
        if any(worker["process"].poll() is not None for worker in workers.values()):
            break
        time.sleep(0.2)
    logs = "\n".join(f"--- {name}:\n{log_of(worker)[-3000:]}" for name, worker in workers.items())
    pytest.fail(f"image {image.pk} not analysed within {timeout} s\n{logs}")


def reanalysed(images):
    return ImageAnalysis.objects.filter(image__in=images).exclude(model_versions__embedder="test").count()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_reindex_on_the_bulk_queue_never_delays_a_new_upload(two_workers, settings):
    # A catalogue analysed by an older embedder: what `reindex` re-analyses.
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "ANALYSE_ON_SAVE": False}
    catalogue = [make_image(make_product(category="top"), content=png_bytes(120 + n % 7, 240, seed=n))
                 for n in range(80)]
    for image in catalogue:
        make_analysis(image)  # model_versions {"embedder": "test"}: stale for the current pipeline
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "ANALYSE_ON_SAVE": True}

    first = make_image(make_product(category="top"), content=png_bytes(seed=1001))  # the uploads worker is ready
    assert wait_done(first, two_workers).status == "done"

    out = StringIO()
    call_command("reindex", "--queue", "--batch-size", "4", "--no-progress", stdout=out)
    assert "80 image(s) to re-analyse" in out.getvalue()
    assert f"Sent 80 analyses to the Celery queue '{BULK}' (20 task(s) of up to 4 images)" in out.getvalue()
    assert redis.Redis.from_url(BROKER).llen(BULK) > 0  # the bulk queue is full of re-index tasks
    deadline = time.monotonic() + 240
    while not reanalysed(catalogue):  # … and the bulk worker is busy with them
        assert time.monotonic() < deadline, f"the bulk worker did not start:\n{log_of(two_workers['bulk'])[-3000:]}"
        time.sleep(0.2)

    upload = make_image(make_product(category="bottom"), content=png_bytes(seed=2002))  # a new upload now
    analysis = wait_done(upload, two_workers)
    still_waiting = redis.Redis.from_url(BROKER).llen(BULK)
    reindexed = reanalysed(catalogue)

    assert analysis.status == "done", analysis.error
    print(f"upload analysed with {still_waiting} re-index task(s) still queued, {reindexed}/80 re-analysed")
    assert still_waiting > 0 and reindexed < 80, (still_waiting, reindexed)  # done while the re-index went on
    line = f"analysed image {upload.pk}:"  # logged by the worker right after it stored the analysis
    deadline = time.monotonic() + 30
    while line not in log_of(two_workers["uploads"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    uploads_log, bulk_log = log_of(two_workers["uploads"]), log_of(two_workers["bulk"])
    assert line in uploads_log and line not in bulk_log  # the uploads worker did it
    assert "Task recommender.analyse_images[" in bulk_log  # the re-index went as batch tasks to the bulk worker …
    assert "Task recommender.analyse_images[" not in uploads_log  # … and none of them to the uploads worker


@pytest.mark.django_db
def test_queue_needs_a_broker(settings):
    """Without a broker (eager) --queue refuses instead of silently analysing everything in this process."""
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "ANALYSE_ON_SAVE": False}
    make_image(make_product(category="top"))
    with pytest.raises(CommandError, match="--queue needs a Celery broker"):
        call_command("analyse", "--all", "--queue", "--no-progress", stdout=StringIO())
