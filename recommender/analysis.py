"""Analysing one product image and storing what was found (the body of the Celery task and of
``manage.py analyse``).

A run is idempotent: it replaces the image's articles in one transaction. Errors a shop can cause (a file
that is not an image, a missing file) end as a ``failed`` analysis with a readable message; transient
errors (the database or the broker going away) propagate so the Celery task retries them.
"""
import logging
import re
import time

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from django.apps import apps
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.db.models import F
from django.utils import timezone

from . import cache as look_cache
from . import pipeline
from .conf import EMBEDDING_DIM, settings
from .models import DetectedArticle, ImageAnalysis

logger = logging.getLogger(__name__)

#: Errors worth retrying later rather than recording as a failed analysis.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)

Status = ImageAnalysis.Status


def image_model():
    return apps.get_model(settings.PRODUCT_IMAGE_MODEL)


class AnalysisFailed(Exception):
    """An image the pipeline cannot analyse; the message is shown to staff as is."""


def mark_queued(image_or_id):
    """Create or reset the image's analysis to ``queued`` (a new file needs a new analysis)."""
    image_id = getattr(image_or_id, "pk", image_or_id)
    analysis, created = ImageAnalysis.objects.get_or_create(image_id=image_id)
    if not created and analysis.status != Status.QUEUED:
        ImageAnalysis.objects.filter(pk=analysis.pk).update(status=Status.QUEUED, error="", updated_at=timezone.now())
        analysis.status = Status.QUEUED
    return analysis


def own_category(product):
    """The look category in which ``product`` is inventory, or "" (outfits and accessories are not)."""
    if getattr(product, "is_outfit", False):
        return ""
    category = getattr(product, "look_category", "") or ""
    return category if category in settings.CATEGORIES else ""


def _vector(value, what):
    vector = np.asarray(value, dtype=np.float32).reshape(-1)
    if vector.shape[0] != EMBEDDING_DIM:
        raise AnalysisFailed(
            f"the embedder returned {vector.shape[0]}-dimensional vectors for the {what}; the database stores "
            f"{EMBEDDING_DIM} (recommender.conf.EMBEDDING_DIM) — use a matching embedder or migrate"
        )
    if not np.all(np.isfinite(vector)):
        raise AnalysisFailed(f"the embedder returned a vector with NaN or infinite values for the {what}")
    return vector


def build_articles(analysis, product, result):
    """Unsaved ``DetectedArticle`` rows for ``result`` (an ``ml.pipeline.Analysis``).

    - A full shot keeps every detected article of a look category (its look rows).
    - The product's own article (``is_inventory``) is its best detection of its own look category, or its
      whole image (box 0,0,1,1) when none was detected — for every product that has a look category and is
      not an outfit, full shot or not.
    """
    versions = dict(getattr(result, "model_versions", None) or {})
    version = versions.get("embedder", "")
    own = own_category(product)
    min_confidence = settings.MIN_ARTICLE_CONFIDENCE
    detected = [a for a in (result.articles or []) if a.category in settings.CATEGORIES]

    common = dict(
        analysis=analysis,
        product=product,
        base_colour=(product.base_colour or "").strip().lower(),
        price=product.price,
        is_active=product.is_active,
        model_version=version,
    )
    look_gender = getattr(result, "gender", None) or product.gender or ""

    def make(article, *, inventory):
        x1, y1, x2, y2 = (float(min(max(v, 0.0), 1.0)) for v in article.box)
        return DetectedArticle(
            category=article.category,
            x1=x1, y1=y1, x2=x2, y2=y2,
            confidence=float(article.confidence),
            gender=(product.gender or look_gender) if inventory else look_gender,
            is_inventory=inventory,
            embedding=_vector(article.embedding, f"{article.category} article"),
            **common,
        )

    rows = []
    own_best = None
    if own:
        candidates = [a for a in detected if a.category == own and a.confidence >= min_confidence]
        own_best = max(candidates, key=lambda a: a.confidence, default=None)
    if result.is_full_shot:
        rows.extend(make(article, inventory=article is own_best) for article in detected)
    elif own_best is not None:
        rows.append(make(own_best, inventory=True))
    if own and own_best is None:
        rows.append(
            DetectedArticle(
                category=own, x1=0.0, y1=0.0, x2=1.0, y2=1.0, confidence=1.0,
                gender=product.gender or look_gender, is_inventory=True, is_whole_image=True,
                embedding=_vector(result.image_embedding, "whole image"),
                **common,
            )
        )
    return rows


def start(image_id):
    """Mark the analysis of ``image_id`` running (creating it if needed) and count the attempt."""
    analysis, _ = ImageAnalysis.objects.get_or_create(image_id=image_id)
    now = timezone.now()
    ImageAnalysis.objects.filter(pk=analysis.pk).update(
        status=Status.RUNNING, started_at=now, finished_at=None, attempts=F("attempts") + 1, updated_at=now
    )
    analysis.refresh_from_db()
    return analysis


def fail(analysis, message):
    now = timezone.now()
    with transaction.atomic():
        analysis = ImageAnalysis.objects.select_for_update().get(pk=analysis.pk)
        analysis.articles.all().delete()
        analysis.status = Status.FAILED
        analysis.error = message[:2000]
        analysis.finished_at = now
        analysis.save()
        transaction.on_commit(look_cache.bump)
    logger.warning("analysis of image %s failed: %s", analysis.image_id, message)
    return analysis


def store(analysis, image, result, *, sha256=None):
    """Replace the articles of ``analysis`` by those of ``result``, in one transaction.

    When the image's file changed while it was being analysed (another run will handle the new file),
    nothing is written and the analysis is returned as it stands.
    """
    product = image.product
    rows = build_articles(analysis, product, result)
    has_own = bool(own_category(product))
    status = Status.DONE if (result.is_full_shot or has_own) else Status.SKIPPED
    with transaction.atomic():
        locked = ImageAnalysis.objects.select_for_update().get(pk=analysis.pk)
        if sha256 is not None:
            current = image_model().objects.filter(pk=image.pk).values_list("sha256", flat=True).first()
            if current is not None and current != sha256:
                logger.info("image %s changed during its analysis; keeping the newer run's result", image.pk)
                return locked
        locked.articles.all().delete()
        DetectedArticle.objects.bulk_create(rows)
        locked.status = status
        locked.error = ""
        locked.is_full_shot = bool(result.is_full_shot)
        locked.pose_score = _float_or_none(getattr(result, "pose_score", None))
        locked.gender = getattr(result, "gender", None) or ""
        locked.gender_source = getattr(result, "gender_source", None) or ""
        locked.gender_confidence = _float_or_none(getattr(result, "gender_confidence", None))
        locked.width = getattr(result, "width", None)
        locked.height = getattr(result, "height", None)
        locked.timings = {k: round(float(v), 2) for k, v in (getattr(result, "timings", None) or {}).items()}
        locked.model_versions = {str(k): str(v) for k, v in (getattr(result, "model_versions", None) or {}).items()}
        locked.finished_at = timezone.now()
        locked.save()
        transaction.on_commit(look_cache.bump)
    return locked


def _float_or_none(value):
    return None if value is None else float(value)


INTERRUPTED = re.compile(r"^interrupted (\d+) time")


def count_interruption(image_id):
    """A redelivered task found the analysis still "running": the process of the previous run died. Count it
    (in ``error``, shown in the admin meanwhile; a finished run clears it) and return how many in a row."""
    with transaction.atomic():
        analysis = ImageAnalysis.objects.select_for_update().filter(image_id=image_id).first()
        if analysis is None or analysis.status != Status.RUNNING:
            return 0  # never started (a prefetched message given back) or finished since: not an interruption
        found = INTERRUPTED.match(analysis.error or "")
        count = (int(found.group(1)) if found else 0) + 1
        ImageAnalysis.objects.filter(pk=analysis.pk).update(
            error=f"interrupted {count} time(s): the worker running the analysis stopped (crash, out-of-memory "
                  f"kill or shutdown)", updated_at=timezone.now())
    logger.warning("analysis of image %s was interrupted (%d time(s) in a row)", image_id, count)
    return count


def analyse_product_image(image_id, *, redelivered=False):
    """Analyse one product image now, in this process, and store the result. Returns the ``ImageAnalysis``.

    ``redelivered``: the Celery message comes back after its worker died; after
    ``BUY_THE_LOOK["TASK_MAX_INTERRUPTIONS"]`` such interruptions in a row the analysis is failed, not run.
    Raises only transient errors (see ``TRANSIENT_ERRORS``) and ``LookupError`` when the image is gone.
    """
    from ml.images import ImageError, load_image

    Image = image_model()
    try:
        image = Image.objects.select_related("product").get(pk=image_id)
    except Image.DoesNotExist:
        raise LookupError(f"product image {image_id} does not exist (deleted before its analysis ran)") from None
    interruptions = count_interruption(image.pk) if redelivered else 0
    if interruptions >= settings.TASK_MAX_INTERRUPTIONS:
        return fail(
            ImageAnalysis.objects.get(image_id=image.pk),
            f"the analysis stopped its worker {interruptions} times in a row (a crash or the out-of-memory killer, "
            f"possibly caused by this image); not run again automatically — re-analyse it from the admin once the "
            f"cause is fixed",
        )
    analysis = start(image.pk)
    sha256 = image.sha256
    started = time.perf_counter()
    try:
        try:
            data = image.read_bytes() if hasattr(image, "read_bytes") else image.file.read()
        except FileNotFoundError:
            raise AnalysisFailed(f"image file {image.file.name!r} is missing from storage") from None
        except OSError as exc:
            raise AnalysisFailed(f"cannot read image file {image.file.name!r}: {exc}") from None
        picture = load_image(data)
        result = pipeline.analyse(picture, gender=image.product.gender or None)
    except TRANSIENT_ERRORS:
        raise
    except (ImageError, AnalysisFailed) as exc:
        return fail(analysis, str(exc))
    except DatabaseError:
        raise
    except SoftTimeLimitExceeded:
        return fail(analysis, f"the analysis took longer than {settings.TASK_TIME_LIMIT} s "
                              f"(BUY_THE_LOOK['TASK_TIME_LIMIT']) and was stopped")
    except Exception as exc:  # a model error: recorded, visible in the admin, re-runnable
        logger.exception("pipeline error on image %s", image.pk)
        return fail(analysis, f"pipeline error: {type(exc).__name__}: {exc}")
    try:
        stored = store(analysis, image, result, sha256=sha256)
    except AnalysisFailed as exc:
        return fail(analysis, str(exc))
    logger.info(
        "analysed image %s: %s, %d article(s) in %.0f ms",
        image.pk, stored.status, stored.articles.count(), (time.perf_counter() - started) * 1000,
    )
    return stored


def analyse_many(image_ids, *, batch_size=None, on_done=None):
    """Analyse many product images in this process (``manage.py analyse``/``reindex``).

    Full shots go through the whole pipeline one by one; every other image (catalogue photos) only needs
    the pose gate and its whole-image embedding, and those embeddings are computed in batches of
    ``batch_size`` — several times faster than one ``analyse()`` per image. ``on_done(analysis)`` is called
    after each image. Returns the list of analyses.
    """
    from ml.images import ImageError, load_image
    from ml.pipeline import Analysis

    Image = image_model()
    batch_size = batch_size or settings.EMBED_BATCH_SIZE
    done = []

    def finish(analysis):
        done.append(analysis)
        if on_done:
            on_done(analysis)

    ids = list(image_ids)
    for offset in range(0, len(ids), batch_size):
        chunk = ids[offset: offset + batch_size]
        images = {image.pk: image for image in Image.objects.filter(pk__in=chunk).select_related("product")}
        pending = []  # (image, analysis, sha256, picture, pose, timings)
        for image_id in chunk:
            image = images.get(image_id)
            if image is None:
                continue
            analysis = start(image.pk)
            try:
                began = time.perf_counter()
                try:
                    data = image.read_bytes()
                except FileNotFoundError:
                    raise AnalysisFailed(f"image file {image.file.name!r} is missing from storage") from None
                picture = load_image(data)
                decoded = time.perf_counter()
                parts = pipeline.get_parts()
                pose = parts.pose.check(picture)
                posed = time.perf_counter()
                if pose.is_full_shot or not image.product.gender:
                    finish(_store_or_fail(analysis, image, pipeline.analyse(picture, gender=image.product.gender or None)))
                    continue
                timings = {"decode": (decoded - began) * 1000, "pose": (posed - decoded) * 1000, "gender": 0.0,
                           "detect": 0.0}
                pending.append((image, analysis, image.sha256, picture, pose, timings))
            except TRANSIENT_ERRORS:
                raise
            except (ImageError, AnalysisFailed) as exc:
                finish(fail(analysis, str(exc)))
            except DatabaseError:
                raise
            except Exception as exc:
                logger.exception("pipeline error on image %s", image.pk)
                finish(fail(analysis, f"pipeline error: {type(exc).__name__}: {exc}"))
        if not pending:
            continue
        parts = pipeline.get_parts()
        began = time.perf_counter()
        try:
            vectors = np.asarray(parts.embedder.embed([item[3] for item in pending]), dtype=np.float32)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            logger.exception("embedding a batch failed")
            for image, analysis, *_ in pending:
                finish(fail(analysis, f"pipeline error: {type(exc).__name__}: {exc}"))
            continue
        share = (time.perf_counter() - began) * 1000 / len(pending)
        versions = {"pose": str(parts.pose.version), "embedder": str(parts.embedder.version)}
        for (image, analysis, sha256, picture, pose, timings), vector in zip(pending, vectors):
            timings = {**timings, "embed": share}
            timings["total"] = sum(timings.values())
            result = Analysis(
                width=picture.width, height=picture.height, is_full_shot=False, pose_score=float(pose.score),
                keypoints=[], gender=image.product.gender, gender_confidence=1.0, gender_source="product",
                articles=[], image_embedding=vector, timings=timings, model_versions=versions,
            )
            finish(_store_or_fail(analysis, image, result, sha256=sha256))
    return done


def _store_or_fail(analysis, image, result, sha256=None):
    try:
        return store(analysis, image, result, sha256=sha256 if sha256 is not None else image.sha256)
    except AnalysisFailed as exc:
        return fail(analysis, str(exc))
