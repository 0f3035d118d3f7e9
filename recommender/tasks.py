"""Celery tasks of the recommender.

``analyse_image(image_id)`` analyses one product image and replaces its articles (idempotent). It is
acknowledged late (a worker killed mid-task leaves the message to be delivered again), retries transient
errors (database or connection lost) with exponential backoff, and records every other failure on the
``ImageAnalysis`` with a readable message.

``analyse_images(image_ids)`` does the same for a batch (bulk work: ``manage.py analyse --queue``,
``reindex --queue``): one task, one ``analyse_many`` run — batched embedding and a fixed number of database
statements per batch instead of per image. Its time limit grows with the batch.
"""
import logging
import os
import time

from celery import Task, shared_task
from celery.signals import worker_init, worker_process_init

from .analysis import TRANSIENT_ERRORS, analyse_product_image
from .conf import settings

logger = logging.getLogger(__name__)


#: Both analysis tasks: acknowledged late (a worker killed mid-task leaves the message to be delivered again),
#: transient errors retried with exponential backoff.
TASK_OPTIONS = dict(bind=True, acks_late=True, reject_on_worker_lost=True, autoretry_for=TRANSIENT_ERRORS,
                    retry_backoff=2, retry_backoff_max=300, retry_jitter=True)


class AnalyseImageTask(Task):
    """The analysis task's options read ``BUY_THE_LOOK`` when they are used (sending, retrying, running), not
    when this module is imported: a changed setting (tests, a reloaded configuration) takes effect."""

    @property
    def max_retries(self):
        return settings.TASK_MAX_RETRIES

    @property
    def soft_time_limit(self):
        return settings.TASK_TIME_LIMIT

    @property
    def time_limit(self):
        return settings.TASK_TIME_LIMIT + 60

    def _get_exec_options(self):
        # Celery caches the sending options (time limits among them) on first use; read them afresh.
        self._exec_options = None
        return super()._get_exec_options()

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        """Retries exhausted (or an unexpected error): the analysis is failed, not left "running"."""
        image_id = args[0] if args else kwargs.get("image_id")
        try:
            from .analysis import fail
            from .models import ImageAnalysis

            analysis = ImageAnalysis.objects.filter(image_id=image_id).first()
            if analysis is not None:
                fail(analysis, f"gave up after {self.request.retries + 1} attempt(s): {type(exc).__name__}: {exc}")
        except Exception:  # the database may be the thing that is down
            logger.exception("could not record the failure of image %s", image_id)


@shared_task(base=AnalyseImageTask, name="recommender.analyse_image", **TASK_OPTIONS)
def analyse_image(self, image_id):
    """Analyse product image ``image_id`` and store its articles; returns a small summary."""
    # Delivered again after the worker running it died (late acknowledgement): counted, see TASK_MAX_INTERRUPTIONS.
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    try:
        analysis = analyse_product_image(image_id, redelivered=redelivered)
    except LookupError as exc:
        logger.info("%s", exc)
        return {"image": image_id, "status": "missing"}
    return {
        "image": image_id,
        "status": analysis.status,
        "articles": analysis.articles.count(),
        "error": analysis.error,
    }


class AnalyseImagesTask(AnalyseImageTask):
    """Options of the batch task: ``TASK_TIME_LIMIT`` is per image, so a batch's limits are set when it is sent
    (``hooks.queue_batch``); these are the fallbacks for a batch sent without them."""

    @property
    def soft_time_limit(self):
        return settings.TASK_TIME_LIMIT * settings.EMBED_BATCH_SIZE

    @property
    def time_limit(self):
        return settings.TASK_TIME_LIMIT * settings.EMBED_BATCH_SIZE + 60

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        """Retries exhausted (or an unexpected error): the batch's analyses still "running" are failed."""
        image_ids = args[0] if args else kwargs.get("image_ids") or []
        try:
            from .analysis import fail
            from .models import ImageAnalysis

            running = ImageAnalysis.objects.filter(image_id__in=list(image_ids), status=ImageAnalysis.Status.RUNNING)
            for analysis in running:
                fail(analysis, f"gave up after {self.request.retries + 1} attempt(s): {type(exc).__name__}: {exc}")
        except Exception:  # the database may be the thing that is down
            logger.exception("could not record the failure of images %s", image_ids)


@shared_task(base=AnalyseImagesTask, name="recommender.analyse_images", **TASK_OPTIONS)
def analyse_images(self, image_ids):
    """Analyse a batch of product images in this worker process; returns the count of each status.

    Delivered again after the worker running it died: the images the first run finished are left alone and
    the others are analysed one by one as ``analyse_image`` does on redelivery, so an image that kills its
    worker is counted (``TASK_MAX_INTERRUPTIONS``) and failed alone instead of taking its batch with it.
    """
    from collections import Counter

    from .analysis import analyse_many
    from .models import ImageAnalysis

    image_ids = list(image_ids)
    counts = Counter()
    if (self.request.delivery_info or {}).get("redelivered"):
        finished = set(ImageAnalysis.objects.filter(image_id__in=image_ids).exclude(
            status__in=(ImageAnalysis.Status.RUNNING, ImageAnalysis.Status.QUEUED)).values_list("image_id", flat=True))
        for image_id in image_ids:
            if image_id in finished:
                counts["already done"] += 1
                continue
            try:
                counts[analyse_product_image(image_id, redelivered=True).status] += 1
            except LookupError:
                counts["missing"] += 1
        return dict(counts)
    started = time.perf_counter()
    analysed = analyse_many(image_ids, on_done=lambda analysis: counts.update([analysis.status]))
    missing = len(image_ids) - len(analysed)
    if missing:
        counts["missing"] += missing
    logger.info("analysed a batch of %d image(s) in %.0f ms: %s", len(image_ids),
                (time.perf_counter() - started) * 1000, dict(counts))
    return dict(counts)


def worker_model_threads(concurrency, configured=None, cores=None):
    """Threads per model for each process of a worker running ``concurrency`` processes."""
    if configured:
        return max(1, int(configured))
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // max(1, int(concurrency or 1)))


@worker_init.connect(dispatch_uid="recommender.model_threads")
def share_cores_between_worker_processes(sender=None, **kwargs):
    """Before the pool forks: each process's models get their share of the cores (``MODEL_THREADS``)."""
    from ml.loading import set_model_threads

    threads = worker_model_threads(getattr(sender, "concurrency", 1), settings.MODEL_THREADS)
    set_model_threads(threads)
    logger.info("models use %d thread(s) in each of the %s worker process(es)", threads,
                getattr(sender, "concurrency", 1))


@worker_process_init.connect(dispatch_uid="recommender.warm_up")
def warm_up_worker_process(**kwargs):
    """Each worker process loads the models as it starts (after the fork), in a background thread: the pool
    waits only a few seconds (``worker_proc_alive_timeout``) for a new process to report, so the process
    reports at once and a task arriving meanwhile waits for the models being loaded. Off with ``WARM_UP``."""
    from .warmup import start

    start()


@shared_task(name="recommender.look_candidates", ignore_result=True, autoretry_for=TRANSIENT_ERRORS,
             retry_backoff=True, max_retries=3)
def look_candidates(product_ids):
    """Compute the candidate lists of the look rows of ``product_ids`` (``recommender.candidates.refresh``)."""
    from .candidates import refresh

    done = refresh(product_ids)
    logger.info("candidate lists of %d look row(s) of %d product(s) in %.0f ms", done.rows, len(product_ids),
                done.seconds * 1000)
    return done.rows
