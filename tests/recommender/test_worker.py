"""A real Celery worker on Redis analyses uploaded images (slow: starts a worker process)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from look_factories import worker_env, NOT_AN_IMAGE, demo_look_photo, make_image, make_product, use_broker
from recommender.models import ImageAnalysis

ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = 14  # a database number nothing else of the project uses
BROKER = f"redis://127.0.0.1:6379/{REDIS_DB}"


@pytest.fixture
def worker(settings, tmp_path):
    """A ``celery -A shop worker`` on Redis db 14, reading the pytest database and media folder."""
    redis.Redis.from_url(BROKER).flushdb()
    env = worker_env(BROKER, settings.MEDIA_ROOT)
    log = open(tmp_path / "worker.log", "w+")
    process = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "celery"), "-A", "shop", "worker", "--loglevel=INFO", "--concurrency=1",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--hostname", f"test-{os.getpid()}@%h"],
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


def wait_for(image, statuses=("done", "failed", "skipped"), timeout=240, worker=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        analysis = ImageAnalysis.objects.filter(image=image).first()
        if analysis is not None and analysis.status in statuses:
            return analysis
        if worker is not None and worker["process"].poll() is not None:
            break
        time.sleep(0.5)
    log = ""
    if worker is not None:
        worker["log"].seek(0)
        log = worker["log"].read()[-4000:]
    pytest.fail(f"image {image.pk} not analysed within {timeout} s; worker log:\n{log}")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_records_a_failed_analysis(worker):
    image = make_image(make_product(category="top"), content=NOT_AN_IMAGE)
    analysis = wait_for(image, worker=worker, timeout=90)
    assert analysis.status == "failed" and "not an image" in analysis.error and analysis.attempts == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_analyses_an_uploaded_full_shot(worker):
    outfit = make_product(category="", outfit=True, gender="Women")
    image = make_image(outfit, content=demo_look_photo().read_bytes())
    analysis = wait_for(image, worker=worker)
    assert analysis.status == "done", analysis.error
    assert analysis.is_full_shot and analysis.articles.count() >= 2
    assert set(analysis.model_versions) >= {"pose", "detector", "embedder"}


def test_importing_the_recommender_loads_no_tensorflow():
    """A Celery prefork parent imports tasks, signals, admin, API: none may load TensorFlow before fork."""
    code = (
        "import sys, django; django.setup();"
        "import shop.celery, shop.urls, recommender.tasks, recommender.hooks, recommender.looks, recommender.photo_search, "
        "recommender.api, recommender.admin, recommender.views, recommender.templatetags.buy_the_look, "
        "recommender.pipeline, recommender.management.commands.analyse, recommender.management.commands.reindex;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'keras_cv')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "DJANGO_SETTINGS_MODULE": "shop.settings"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
