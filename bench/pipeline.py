"""Pipeline speed: ms per full-shot photo by stage, and catalogue ingest in images per second.

- Full shots: ``ml.benchmarks.pipeline`` (the ``python -m ml.bench pipeline`` code) on ``--photos``
  (default ``demo_data/looks``), once as a product photo (the product's gender is known, as when a shop
  uploads it) and once as a visitor's search photo (gender predicted) when the gender weights exist.
- Ingest: catalogue photos (default ``demo_data/products``) become ``Product``/``ProductImage`` rows in the
  bench database with their files in a bench media folder, then are analysed
  1. eagerly, in this process, by ``recommender.analysis.analyse_many`` (what ``manage.py analyse`` runs:
     catalogue photos embedded in batches of ``BUY_THE_LOOK["EMBED_BATCH_SIZE"]``), and
  2. through a real Celery worker (``celery -A shop worker`` subprocess) on Redis (a spare database number,
     ``--redis-db``), one ``recommender.analyse_images`` task per batch of images (as ``manage.py analyse --queue``
     sends them), from enqueue until every analysis is
     finished in the database.
  Both measure the same images after a warm-up on other images (models loaded, graphs traced).

When the committed model weights are not there, the section says "skipped: no weights".
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
FINISHED = ("done", "failed", "skipped")


def _relative(path):
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def missing_weights(need_gender=False):
    """Paths of the committed weights the pipeline needs that are not there."""
    from ml import detect, embed

    detector_config = Path(detect.DEFAULT_WEIGHTS).with_name(
        Path(detect.DEFAULT_WEIGHTS).name.replace(".weights.h5", "") + ".json")
    needed = [embed.DEFAULT_WEIGHTS, detect.DEFAULT_WEIGHTS, detector_config,
              REPO / "ml" / "weights" / "pose_detection.tflite", REPO / "ml" / "weights" / "pose_landmark_full.tflite"]
    if need_gender:
        from ml import gender

        needed.append(gender.DEFAULT_WEIGHTS)
    return [str(Path(path).relative_to(REPO)) if str(path).startswith(str(REPO)) else str(path)
            for path in needed if not Path(path).exists()]


def full_shots(photos, runs, warmup=3, progress=True):
    from ml.benchmarks import pipeline as ml_pipeline_bench

    result = {"photos_dir": _relative(photos)}
    result["product_photo"] = ml_pipeline_bench.run(
        argparse.Namespace(photos=Path(photos), n=runs, warmup=warmup, product_gender="Women"))
    if not missing_weights(need_gender=True):
        result["search_photo"] = ml_pipeline_bench.run(
            argparse.Namespace(photos=Path(photos), n=runs, warmup=warmup, product_gender=None))
    else:
        result["search_photo"] = {"status": "skipped: no gender weights"}
    return result


def create_catalogue(products_dir, count, media_root):
    """Products and images (files copied into ``media_root``) from ``styles.csv``; returns image ids."""
    from catalog.models import Product, ProductImage
    from recommender.taxonomy import look_category_for

    products_dir = Path(products_dir)
    with open(products_dir / "styles.csv", newline="", encoding="utf-8") as handle:
        styles = [row for row in csv.DictReader(handle) if (products_dir / "images" / f"{row['id']}.jpg").exists()]
    styles = styles[:count]
    target = Path(media_root) / "products" / "bench-ingest"
    target.mkdir(parents=True, exist_ok=True)
    products, images = [], []
    for row in styles:
        products.append(Product(
            sku=f"ingest-{row['id']}", name=row["productDisplayName"][:255] or row["id"], slug=f"ingest-{row['id']}",
            gender=row["gender"], master_category=row["masterCategory"], sub_category=row["subCategory"],
            article_type=row["articleType"], base_colour=row["baseColour"], price="25.00",
            look_category=look_category_for(row["subCategory"], row["articleType"]),
        ))
    products = Product.objects.bulk_create(products)  # no signals: nothing is analysed before we time it
    for product, row in zip(products, styles):
        source = products_dir / "images" / f"{row['id']}.jpg"
        shutil.copyfile(source, target / source.name)
        images.append(ProductImage(product=product, file=f"products/bench-ingest/{source.name}", is_primary=True,
                                   width=224, height=224, sha256=hashlib.sha256(source.read_bytes()).hexdigest()))
    return [image.pk for image in ProductImage.objects.bulk_create(images)]


def create_looks(photos_dir, count, media_root):
    """``count`` outfit products with a full-shot photo each (warm-up: every model loads, the detector too)."""
    from catalog.models import Product, ProductImage

    photos = sorted(p for p in Path(photos_dir).iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:count]
    target = Path(media_root) / "looks" / "bench-ingest"
    target.mkdir(parents=True, exist_ok=True)
    products = Product.objects.bulk_create([
        Product(sku=f"ingest-look-{photo.stem}", name=f"Look {photo.stem}", slug=f"look-{photo.stem}",
                gender="Women" if index % 2 else "Men", master_category="Outfit", price="90.00", look_category="")
        for index, photo in enumerate(photos)
    ])
    images = []
    for product, photo in zip(products, photos):
        shutil.copyfile(photo, target / photo.name)
        images.append(ProductImage(product=product, file=f"looks/bench-ingest/{photo.name}", is_primary=True,
                                   sha256=hashlib.sha256(photo.read_bytes()).hexdigest()))
    return [image.pk for image in ProductImage.objects.bulk_create(images)]


def _reset(image_ids):
    from recommender.models import ImageAnalysis

    ImageAnalysis.objects.filter(image_id__in=image_ids).delete()


def _statuses(image_ids):
    from django.db.models import Count

    from recommender.models import ImageAnalysis

    rows = ImageAnalysis.objects.filter(image_id__in=image_ids).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def _gate_skipped(image_ids):
    """How many of the analyses skipped the pose gate (the shot test ruled a full shot out: no "pose" timing)."""
    from recommender.models import ImageAnalysis

    rows = ImageAnalysis.objects.filter(image_id__in=image_ids, timings__has_key="shot_test")
    return rows.exclude(timings__has_key="pose").count()


def _stage_means(image_ids):
    """Mean ms per stage the analyses recorded (``ImageAnalysis.timings``): where an image's time went."""
    from recommender.models import ImageAnalysis

    sums, count = {}, 0
    for timings in ImageAnalysis.objects.filter(image_id__in=image_ids).values_list("timings", flat=True):
        count += 1
        for stage, value in (timings or {}).items():
            if isinstance(value, (int, float)):
                sums[stage] = sums.get(stage, 0.0) + float(value)
    return {stage: round(total / count, 1) for stage, total in sums.items()} if count else {}


def _full_shots(image_ids):
    from recommender.models import ImageAnalysis

    return ImageAnalysis.objects.filter(image_id__in=image_ids, is_full_shot=True).count()


def ingest_eager(warmup_ids, timed_ids, progress=True, desc="ingest (eager)"):
    from recommender.analysis import analyse_many
    from recommender.conf import settings

    analyse_many(warmup_ids)
    bar = tqdm(total=len(timed_ids), desc=desc, unit="image", disable=not progress, mininterval=1)
    started = time.perf_counter()
    analyse_many(timed_ids, on_done=lambda analysis: bar.update(1))
    seconds = time.perf_counter() - started
    bar.close()
    return {"images": len(timed_ids), "seconds": round(seconds, 2),
            "images_per_second": round(len(timed_ids) / seconds, 2), "batch_size": settings.EMBED_BATCH_SIZE,
            "statuses": _statuses(timed_ids), "stage_ms_mean": _stage_means(timed_ids),
            "gate_skipped": _gate_skipped(timed_ids), "full_shots": _full_shots(timed_ids),
            "look_candidates": bool(settings.LOOK_CANDIDATES),
            "how": "recommender.analysis.analyse_many (manage.py analyse)"}


def _look_candidates(on):
    from django.conf import settings
    from django.test.utils import override_settings

    return override_settings(BUY_THE_LOOK={**getattr(settings, "BUY_THE_LOOK", {}), "LOOK_CANDIDATES": on})


def _wait_finished(image_ids, timeout, bar=None):
    from recommender.models import ImageAnalysis

    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        now = ImageAnalysis.objects.filter(image_id__in=image_ids, status__in=FINISHED).count()
        if bar is not None and now > done:
            bar.update(now - done)
        done = now
        if done >= len(image_ids):
            return True
        time.sleep(0.1)
    return False


def _use_broker(app, eager, broker_url):
    """Point this process's Celery app at ``broker_url`` (or back to eager); returns the previous state."""
    import kombu.pools

    previous = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.task_always_eager, app.conf.broker_url = eager, broker_url
    kombu.pools.reset()  # forget connections and producers made for the previous broker
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
    return previous


def ingest_celery(warmup_ids, timed_ids, *, dbname, media_root, redis_url, concurrency, log_path, progress=True):
    """Start a worker on the bench database, warm it up, then time ``timed_ids`` from enqueue to done."""
    from django.db import connections

    from recommender.conf import settings as look_settings
    from recommender.hooks import queue_batch
    from recommender.tasks import analyse_image
    from shop.celery import app

    batch_size = look_settings.EMBED_BATCH_SIZE

    from .database import _bench_url, DEFAULT_URL

    settings_dict = connections["default"].settings_dict
    base_url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    env = {**os.environ, "DATABASE_URL": _bench_url(base_url, dbname), "CELERY_BROKER_URL": redis_url,
           "MEDIA_ROOT": str(media_root), "DJANGO_SETTINGS_MODULE": "shop.settings", "DEBUG": "0",
           "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-not-a-secret"), "SECURE_SSL_REDIRECT": "0",
           "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    if settings_dict.get("HOST"):
        env.setdefault("PGHOST", str(settings_dict["HOST"]))
    previous = _use_broker(app, False, redis_url)
    # A queue of this run's own: other workers on the same Redis database (tests use their own numbers, but
    # nothing enforces it) never take the bench's tasks, and this worker never takes theirs.
    name = f"bench-{os.getpid()}"
    queue = f"{name}-analyse"
    destination = [f"{name}@{socket.gethostname()}"]
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "shop", "worker", "--loglevel=INFO", f"--concurrency={concurrency}",
         "--without-gossip", "--without-mingle", "-n", f"{name}@%h", "-Q", queue],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        started = time.perf_counter()
        ready = False
        while time.perf_counter() - started < 180 and worker.poll() is None:
            if app.control.ping(destination=destination, timeout=1.0):
                ready = True
                break
        if not ready:
            raise RuntimeError(f"the Celery worker did not answer within 180 s (see {log_path})")
        startup = time.perf_counter() - started
        started = time.perf_counter()
        for image_id in warmup_ids:
            analyse_image.apply_async(args=[image_id], queue=queue)
        if not _wait_finished(warmup_ids, timeout=600):
            raise RuntimeError(f"warm-up tasks did not finish in 600 s (see {log_path})")
        warmup_seconds = time.perf_counter() - started

        bar = tqdm(total=len(timed_ids), desc="ingest (celery)", unit="image", disable=not progress, mininterval=1)
        started = time.perf_counter()
        # As ``manage.py analyse --queue`` sends bulk work: one ``analyse_images`` task per batch.
        for offset in range(0, len(timed_ids), batch_size):
            queue_batch(timed_ids[offset: offset + batch_size], queue=queue)
        enqueued = time.perf_counter() - started
        finished = _wait_finished(timed_ids, timeout=max(600, 10 * len(timed_ids)), bar=bar)
        seconds = time.perf_counter() - started
        bar.close()
        if not finished:
            raise RuntimeError(f"Celery tasks did not finish in time (see {log_path})")
    finally:
        # Warm shutdown of the worker this bench started (its own process group: the worker and its children).
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        log.close()
        _use_broker(app, *previous)
        try:  # the run's queue bindings (the queue itself is empty and gone)
            import redis

            redis.Redis.from_url(redis_url).delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        except Exception:
            pass
    return {"images": len(timed_ids), "seconds": round(seconds, 2),
            "images_per_second": round(len(timed_ids) / seconds, 2), "enqueue_seconds": round(enqueued, 3),
            "worker_concurrency": concurrency, "worker_startup_seconds": round(startup, 2),
            "warmup_images": len(warmup_ids), "warmup_seconds": round(warmup_seconds, 2),
            "statuses": _statuses(timed_ids), "stage_ms_mean": _stage_means(timed_ids),
            "gate_skipped": _gate_skipped(timed_ids), "broker": redis_url,
            "queue": queue, "batch_size": batch_size, "tasks": -(-len(timed_ids) // batch_size),
            "how": "one recommender.analyse_images task per batch of images (as manage.py analyse --queue sends "
                   "them), celery -A shop worker (prefork)"}


def run(*, dbname, photos, products, runs=20, ingest_images=200, concurrency=2, redis_url, media_root, log_dir,
        celery=True, progress=True):
    result = {}
    from ml import embed

    if Path(embed.DEFAULT_WEIGHTS).exists():
        # The batched embedder alone on catalogue photos (``python -m ml.bench embed``): the ceiling of ingest.
        from ml.benchmarks import embed as embed_bench

        result["embedder_batched"] = embed_bench.run(argparse.Namespace(
            batch=32, images=Path(products) / "images", count=256, model="finetuned", weights=None))
        result["embedder_batched"]["source"] = _relative(result["embedder_batched"]["source"])
    missing = missing_weights()
    if missing:
        return {"status": "skipped: no weights", "missing": missing, **result}
    result["status"] = "measured"
    result["full_shot"] = full_shots(photos, runs, progress=progress)
    warmup = max(2 * concurrency, 8)
    image_ids = create_catalogue(products, ingest_images + warmup, media_root)
    # Warm-up: full shots first (so that every worker process loads the detector as well), then catalogue photos.
    look_ids = create_looks(photos, 2 * concurrency, media_root)
    warmup_ids, timed_ids = look_ids + image_ids[:warmup], image_ids[warmup:]
    image_ids = look_ids + image_ids
    result["ingest_eager"] = ingest_eager(warmup_ids, timed_ids, progress=progress)
    # the same images again without the look rows' candidate lists (an eager analysis of a full shot computes its
    # look's lists in the same process): what the lists cost the eager ingest
    _reset(image_ids)
    with _look_candidates(False):
        result["ingest_eager_without_lists"] = ingest_eager(warmup_ids, timed_ids, progress=progress,
                                                            desc="ingest (eager, no lists)")
    if celery:
        _reset(image_ids)
        try:
            result["ingest_celery"] = ingest_celery(
                warmup_ids, timed_ids, dbname=dbname, media_root=media_root, redis_url=redis_url,
                concurrency=concurrency, log_path=Path(log_dir) / "bench-celery-worker.log", progress=progress)
        except Exception as exc:  # reported, not hidden: the other sections still count
            result["ingest_celery"] = {"status": f"failed: {type(exc).__name__}: {exc}"}
    else:
        result["ingest_celery"] = {"status": "skipped (--no-celery)"}
    return result
