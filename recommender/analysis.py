"""Analysing one product image and storing what was found (the body of the Celery task and of
``manage.py analyse``).

Everything about the shop's products comes from the adapter (``BUY_THE_LOOK["PRODUCT_ADAPTER"]``): the image's
bytes and version, its product's facts. A run is idempotent: it replaces the image's articles in one
transaction. Errors a shop can cause (a file that is not an image, a missing file, a product the adapter
cannot describe) end as a ``failed`` analysis, or an article that is never recommended, with a readable
message; transient errors (the database or the broker going away) propagate so the Celery task retries them.
"""
import hashlib
import logging
import re
import time

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from . import cache as look_cache
from . import pipeline
from .conf import COLOUR_DIM, EMBEDDING_DIM, KIND_DIM, settings
from .models import DetectedArticle, ImageAnalysis
from .sync import describe, filter_copies, own_category

logger = logging.getLogger(__name__)

#: Errors worth retrying later rather than recording as a failed analysis.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)

Status = ImageAnalysis.Status


class AnalysisFailed(Exception):
    """An image the pipeline cannot analyse; the message is shown to staff as is."""


def _product_id(image):
    return getattr(image, f"{settings.adapter.image_product_field}_id", None)


def mark_queued(image_or_id):
    """Create or reset the image's analysis to ``queued`` (a new file needs a new analysis)."""
    image_id = getattr(image_or_id, "pk", image_or_id)
    product_id = _product_id(image_or_id) if hasattr(image_or_id, "pk") else None
    defaults = {"product_id": product_id} if product_id is not None else {}
    analysis, created = ImageAnalysis.objects.get_or_create(image_id=image_id, defaults=defaults)
    if not created and (analysis.status != Status.QUEUED or (product_id and analysis.product_id != product_id)):
        changes = {"status": Status.QUEUED, "error": "", "updated_at": timezone.now()}
        if product_id is not None:
            changes["product_id"] = product_id
        ImageAnalysis.objects.filter(pk=analysis.pk).update(**changes)
        analysis.status = Status.QUEUED
    return analysis


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


def _descriptor(value, dim, constant, part, reader):
    """A descriptor as the database stores it (``dim`` finite float32 values), or ``AnalysisFailed`` naming it."""
    descriptor = np.asarray(value, dtype=np.float32).reshape(-1)
    if descriptor.shape[0] != dim or not np.all(np.isfinite(descriptor)):
        raise AnalysisFailed(
            f"the {reader} returned a {descriptor.shape[0]}-value descriptor; the database stores {dim} "
            f"(recommender.conf.{constant}) — use a matching {reader} or set PIPELINE['{part}'] to None"
        )
    return descriptor


def colour_fields(colour) -> dict:
    """``DetectedArticle`` colour fields for an ``ml.colour.Colour`` (none when the colour was not read)."""
    if colour is None or not colour.names:
        return {"colour": None, "colour_name": "", "colours": []}
    return {"colour": _descriptor(colour.descriptor, COLOUR_DIM, "COLOUR_DIM", "colour", "colour reader"),
            "colour_name": str(colour.main)[:32],
            "colours": [[str(name)[:32], float(share)] for name, share in colour.names]}


def kind_fields(kind) -> dict:
    """``DetectedArticle`` kind field for an ``ml.kind_head`` descriptor (None when no kind was read)."""
    return {"kind": None if kind is None else _descriptor(kind, KIND_DIM, "KIND_DIM", "kind_head", "kind head")}


def build_articles(analysis, product_id, facts, result):
    """Unsaved ``DetectedArticle`` rows for ``result`` (an ``ml.pipeline.Analysis``).

    - A full shot keeps every detected article of a look category (its look rows).
    - The product's own article (``is_inventory``) is its best detection of its own look category, or its
      whole image (box 0,0,1,1) when none was detected — for every product the adapter gives a look
      category, full shot or not. It carries the product's own gender only (never a predicted one: a product
      of unknown gender never appears in a gendered look row).
    ``facts``: the adapter's ``ProductFacts`` of the product, or None when it could not describe it.
    """
    versions = dict(getattr(result, "model_versions", None) or {})
    version = versions.get("embedder", "")
    own = own_category(facts)
    product_gender = facts.gender if facts else ""
    detected = [a for a in (result.articles or [])
                if a.category in settings.CATEGORIES and a.confidence >= settings.floor(a.category)]

    common = dict(analysis=analysis, product_id=product_id, model_version=version, **filter_copies(facts))
    look_gender = product_gender or getattr(result, "gender", None) or ""

    def own_colour(colour):
        """The product's own article: the shop's colour word, when it has one, blended into the colour read."""
        if colour is None or not (facts and facts.colour):
            return colour
        from ml.colour import with_known_colour

        return with_known_colour(colour, facts.colour)

    def make(article, *, inventory):
        x1, y1, x2, y2 = (float(min(max(v, 0.0), 1.0)) for v in article.box)
        return DetectedArticle(
            category=article.category,
            x1=x1, y1=y1, x2=x2, y2=y2,
            confidence=float(article.confidence),
            gender=product_gender if inventory else look_gender,
            is_inventory=inventory,
            embedding=_vector(article.embedding, f"{article.category} article"),
            **colour_fields(own_colour(getattr(article, "colour", None)) if inventory else getattr(article, "colour", None)),
            **kind_fields(getattr(article, "kind", None)),
            **common,
        )

    rows = []
    own_best = None
    if own:
        candidates = [a for a in detected if a.category == own]
        own_best = max(candidates, key=lambda a: a.confidence, default=None)
    if result.is_full_shot:
        rows.extend(make(article, inventory=article is own_best) for article in detected)
    elif own_best is not None:
        rows.append(make(own_best, inventory=True))
    if own and own_best is None:
        rows.append(
            DetectedArticle(
                category=own, x1=0.0, y1=0.0, x2=1.0, y2=1.0, confidence=1.0,
                gender=product_gender, is_inventory=True, is_whole_image=True,
                embedding=_vector(result.image_embedding, "whole image"),
                **colour_fields(own_colour(getattr(result, "image_colour", None))),
                **kind_fields(getattr(result, "image_kind", None)),
                **common,
            )
        )
    return rows


def start(image_id, product_id=None):
    """Mark the analysis of ``image_id`` running (creating it if needed) and count the attempt."""
    analysis, _ = ImageAnalysis.objects.get_or_create(image_id=image_id, defaults={"product_id": product_id})
    now = timezone.now()
    changes = dict(status=Status.RUNNING, started_at=now, finished_at=None, attempts=F("attempts") + 1, updated_at=now)
    if product_id is not None:
        changes["product_id"] = product_id
    ImageAnalysis.objects.filter(pk=analysis.pk).update(**changes)
    analysis.refresh_from_db()
    return analysis


def start_many(images):
    """``start`` for many images in three statements; returns their analyses by image primary key."""
    if not images:
        return {}
    ids = [image.pk for image in images]
    product_ids = {image.pk: _product_id(image) for image in images}
    ImageAnalysis.objects.bulk_create(
        [ImageAnalysis(image_id=pk, product_id=product_ids[pk]) for pk in ids], ignore_conflicts=True)
    now = timezone.now()
    product_field = ImageAnalysis._meta.get_field("product").target_field
    known = [When(image_id=pk, then=Value(product_id, output_field=product_field))
             for pk, product_id in product_ids.items() if product_id is not None]
    ImageAnalysis.objects.filter(image_id__in=ids).update(
        status=Status.RUNNING, started_at=now, finished_at=None, attempts=F("attempts") + 1, updated_at=now,
        **({"product_id": Case(*known, default=F("product_id"), output_field=product_field)} if known else {}))
    return {analysis.image_id: analysis for analysis in ImageAnalysis.objects.filter(image_id__in=ids)}


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


def _current_version(image_pk):
    """The adapter's version of the image's file as stored now (None when the image is gone)."""
    adapter = settings.adapter
    image = adapter.get_image_model()._default_manager.filter(pk=image_pk).first()
    return adapter.image_facts(image).version if image is not None else None


def store(analysis, image, result, *, version=None, sha256="", facts=None):
    """Replace the articles of ``analysis`` by those of ``result``, in one transaction.

    ``version``: the adapter's version of the file that was analysed; when the image's file changed while it
    was being analysed (another run will handle the new file), nothing is written and the analysis is
    returned as it stands. ``facts``: the product's ``ProductFacts`` (described now when not given).
    """
    if facts is None:
        facts = describe(settings.adapter.product_of(image))
    stored = store_many([(analysis, image, result, version, sha256, facts)])[0]
    if isinstance(stored, AnalysisFailed):
        raise stored
    return stored


def store_many(items):
    """``store`` for many images at once: one transaction and a fixed number of statements for the whole list.

    ``items``: ``(analysis, image, result, version, sha256, facts)`` tuples. Returns, in the same order, the
    stored ``ImageAnalysis`` — or the ``AnalysisFailed`` an item's result raised (its rows could not be built;
    nothing of it is written, the others are).
    """
    adapter = settings.adapter
    out = [None] * len(items)
    ready = []  # (position, analysis, image, result, version, sha256, rows, status)
    for position, (analysis, image, result, version, sha256, facts) in enumerate(items):
        try:
            rows = build_articles(analysis, adapter.product_of(image).pk, facts, result)
        except AnalysisFailed as exc:
            out[position] = exc
            continue
        status = Status.DONE if (result.is_full_shot or own_category(facts)) else Status.SKIPPED
        ready.append((position, analysis, image, result, version, sha256, rows, status))
    if not ready:
        return out
    now = timezone.now()
    with transaction.atomic():
        # Rows locked in primary-key order: two batches sharing images wait for each other, never deadlock.
        locked = {row.pk: row for row in ImageAnalysis.objects.select_for_update().filter(
            pk__in=[item[1].pk for item in ready]).order_by("pk")}
        versioned = [item[2].pk for item in ready if item[4] is not None]
        current = {pk: adapter.image_facts(image).version for pk, image in _load(versioned).items()}
        write, changed = [], []
        for position, analysis, image, result, version, sha256, rows, status in ready:
            row = locked[analysis.pk]
            if version is not None and current.get(image.pk) not in (None, version):
                logger.info("image %s changed during its analysis; keeping the newer run's result", image.pk)
                out[position] = row
                continue
            row.product_id = adapter.product_of(image).pk
            row.status = status
            row.error = ""
            row.sha256 = sha256 or ""
            row.image_version = (version or "")[:255]
            row.is_full_shot = bool(result.is_full_shot)
            row.pose_score = _float_or_none(getattr(result, "pose_score", None))
            row.gender = getattr(result, "gender", None) or ""
            row.gender_source = getattr(result, "gender_source", None) or ""
            row.gender_confidence = _float_or_none(getattr(result, "gender_confidence", None))
            row.width = getattr(result, "width", None)
            row.height = getattr(result, "height", None)
            row.timings = {k: round(float(v), 2) for k, v in (getattr(result, "timings", None) or {}).items()}
            row.model_versions = {str(k): str(v) for k, v in (getattr(result, "model_versions", None) or {}).items()}
            row.finished_at = now
            row.updated_at = now
            for article in rows:
                article.analysis = row
            write.append(row)
            changed.extend(rows)
            out[position] = row
        if write:
            DetectedArticle.objects.filter(analysis__in=write).delete()  # one DELETE: nothing cascades
            DetectedArticle.objects.bulk_create(changed)
            _update_analyses(write)
            transaction.on_commit(look_cache.bump)
            looks = sorted({row.product_id for row in write if row.is_full_shot and row.status == Status.DONE})
            if looks and settings.LOOK_CANDIDATES:
                transaction.on_commit(lambda: _look_analysed(looks))
    return out


def _look_analysed(product_ids):
    from .hooks import look_analysed

    look_analysed(product_ids)


#: The ``ImageAnalysis`` fields an analysis run writes.
STORED_FIELDS = ["product_id", "status", "error", "sha256", "image_version", "is_full_shot", "pose_score", "gender",
                 "gender_source", "gender_confidence", "width", "height", "timings", "model_versions",
                 "finished_at", "updated_at"]


def _update_analyses(analyses):
    """Write ``STORED_FIELDS`` of many analyses in one ``UPDATE … FROM unnest(arrays)`` (Django's
    ``bulk_update`` builds a CASE expression per field and row, which costs more than the analysis itself)."""
    from django.db import connection

    meta = ImageAnalysis._meta
    fields = [meta.get_field(name[:-3] if name.endswith("_id") else name) for name in STORED_FIELDS]
    pk = meta.pk
    columns = [pk.column] + [field.column for field in fields]
    arrays = [[analysis.pk for analysis in analyses]] + [
        [field.get_db_prep_save(getattr(analysis, field.attname), connection) for analysis in analyses]
        for field in fields]
    types = [pk.rel_db_type(connection) if pk.is_relation else pk.cast_db_type(connection)] + [
        (field.target_field.rel_db_type(connection) if field.is_relation else field.cast_db_type(connection))
        for field in fields]
    quote = connection.ops.quote_name
    sql = (f"UPDATE {quote(meta.db_table)} AS a SET "
           + ", ".join(f"{quote(c)} = v.{quote(c)}" for c in columns[1:])
           + " FROM unnest(" + ", ".join(f"%s::{t}[]" for t in types) + ") AS v("
           + ", ".join(quote(c) for c in columns) + f") WHERE a.{quote(pk.column)} = v.{quote(pk.column)}")
    with connection.cursor() as cursor:
        cursor.execute(sql, arrays)


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


class _Source:
    """One image read through the adapter: its bytes, version, digest and product facts."""

    def __init__(self, image, products=None):
        adapter = settings.adapter
        self.image = image
        info = adapter.image_facts(image)
        self.version = info.version or ""
        self.name = info.name or f"image {image.pk}"
        if products is None:
            self.product = adapter.product_of(image)
            self.facts = describe(self.product)
        else:  # ``{product pk: (product, facts)}`` read for a whole batch
            self.product, self.facts = products[_product_id(image)]
        self.data = None
        self.sha256 = ""

    def read(self):
        try:
            self.data = settings.adapter.read_image(self.image)
        except FileNotFoundError:
            raise AnalysisFailed(f"image file {self.name!r} is missing from storage") from None
        except OSError as exc:
            raise AnalysisFailed(f"cannot read image file {self.name!r}: {exc}") from None
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        return self.data

    @property
    def gender(self):
        return (self.facts.gender if self.facts else "") or None


def _load(image_ids):
    adapter = settings.adapter
    manager = adapter.get_image_model()._default_manager
    field = adapter.image_product_field
    return {image.pk: image for image in manager.filter(pk__in=list(image_ids)).select_related(field)}


def _products_of(images):
    """``{product pk: (product, facts)}`` of ``images``, read together (the adapter's ``products_by_pk`` adds its
    prefetches); a product it does not return is read through ``product_of``."""
    adapter = settings.adapter
    found = adapter.products_by_pk({_product_id(image) for image in images})
    out = {}
    for image in images:
        pk = _product_id(image)
        if pk not in out:
            product = found.get(pk) or adapter.product_of(image)
            out[pk] = (product, describe(product))
    return out


def analyse_product_image(image_id, *, redelivered=False):
    """Analyse one product image now, in this process, and store the result. Returns the ``ImageAnalysis``.

    ``redelivered``: the Celery message comes back after its worker died; after
    ``BUY_THE_LOOK["TASK_MAX_INTERRUPTIONS"]`` such interruptions in a row the analysis is failed, not run.
    Raises only transient errors (see ``TRANSIENT_ERRORS``) and ``LookupError`` when the image is gone.
    """
    from ml.images import ImageError, load_image

    image = _load([image_id]).get(image_id)
    if image is None:
        raise LookupError(f"product image {image_id} does not exist (deleted before its analysis ran)")
    interruptions = count_interruption(image.pk) if redelivered else 0
    if interruptions >= settings.TASK_MAX_INTERRUPTIONS:
        return fail(
            ImageAnalysis.objects.get(image_id=image.pk),
            f"the analysis stopped its worker {interruptions} times in a row (a crash or the out-of-memory killer, "
            f"possibly caused by this image); not run again automatically — re-analyse it from the admin once the "
            f"cause is fixed",
        )
    started = time.perf_counter()
    analysis = start(image.pk, _product_id(image))
    try:
        source = _Source(image)
        picture = load_image(source.read())
        result = pipeline.analyse(picture, gender=source.gender)
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
    stored = _store_or_fail(analysis, source, result)
    logger.info(
        "analysed image %s: %s, %d article(s) in %.0f ms",
        image.pk, stored.status, stored.articles.count(), (time.perf_counter() - started) * 1000,
    )
    return stored


def analyse_many(image_ids, *, batch_size=None, on_done=None, overlap=None):
    """Analyse many product images in this process (``manage.py analyse``/``reindex``).

    Batches of ``batch_size`` go through ``ml.pipeline.analyse_batch``: full shots get the whole pipeline,
    catalogue photos of one article only their whole-image embedding, computed in one batch — several times
    faster than one ``analyse()`` per image. With ``overlap`` the models work on one batch in a background
    thread while this thread stores the previous batch and reads the next (database and files: the models do
    not wait for them); by default on, except in a process whose models are single-threaded (a Celery worker
    sharing the cores between its processes: they already overlap each other). ``on_done(analysis)`` is
    called after each image. Returns the list of analyses.
    """
    from concurrent.futures import ThreadPoolExecutor

    from ml.loading import model_threads

    if overlap is None:
        overlap = model_threads() != 1

    batch_size = batch_size or settings.EMBED_BATCH_SIZE
    done = []

    def finish(analysis):
        done.append(analysis)
        if on_done:
            on_done(analysis)

    ids = list(image_ids)
    chunks = [ids[offset: offset + batch_size] for offset in range(0, len(ids), batch_size)]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="analyse-batch") as models:
        running = None  # (readable, future) of the batch the models are working on
        for chunk in chunks:
            readable = _read_batch(chunk, finish)
            submitted = None
            if readable:
                data, genders = [source.data for _, source in readable], [source.gender for _, source in readable]
                submitted = (readable, models.submit(pipeline.analyse_batch, data, genders=genders) if overlap
                             else _Done(pipeline.analyse_batch(data, genders=genders)))
            if running:
                _store_batch(*running, finish)
            running = submitted
        if running:
            _store_batch(*running, finish)
    return done


class _Done:
    """A result computed in this thread, with the ``result()`` of a future."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def _read_batch(chunk, finish):
    """Mark the images of ``chunk`` running and read their files and products: ``[(analysis, _Source)]`` of the
    readable ones (the others are failed and passed to ``finish``)."""
    images = _load(chunk)
    present = [images[image_id] for image_id in chunk if image_id in images]
    analyses = start_many(present)
    products = _products_of(present)
    readable = []
    for image in present:
        analysis = analyses[image.pk]
        try:
            source = _Source(image, products)
            source.read()
            readable.append((analysis, source))
        except TRANSIENT_ERRORS:
            raise
        except AnalysisFailed as exc:
            finish(fail(analysis, str(exc)))
        except DatabaseError:
            raise
        except Exception as exc:
            logger.exception("reading image %s failed", image.pk)
            finish(fail(analysis, f"pipeline error: {type(exc).__name__}: {exc}"))
    return readable


def _store_batch(readable, future, finish):
    """Wait for the models' results of a batch and store them (failures failed, one by one)."""
    from ml.images import ImageError

    analysed = []  # (analysis, source, result)
    for (analysis, source), result in zip(readable, future.result()):
        if isinstance(result, (*TRANSIENT_ERRORS, DatabaseError)):
            raise result
        if isinstance(result, (ImageError, AnalysisFailed)):
            finish(fail(analysis, str(result)))
        elif isinstance(result, Exception):
            logger.error("pipeline error on image %s: %r", source.image.pk, result)
            finish(fail(analysis, f"pipeline error: {type(result).__name__}: {result}"))
        else:
            analysed.append((analysis, source, result))
    stored = store_many([(analysis, source.image, result, source.version, source.sha256, source.facts)
                         for analysis, source, result in analysed])
    for (analysis, _, _), outcome in zip(analysed, stored):
        finish(fail(analysis, str(outcome)) if isinstance(outcome, AnalysisFailed) else outcome)


def _store_or_fail(analysis, source, result):
    try:
        return store(analysis, source.image, result, version=source.version, sha256=source.sha256,
                     facts=source.facts)
    except AnalysisFailed as exc:
        return fail(analysis, str(exc))
