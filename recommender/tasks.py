"""Celery tasks of the recommender.

``analyse_image(image_id)`` analyses one product image and replaces its articles (idempotent). It is
acknowledged late (a worker killed mid-task leaves the message to be delivered again), retries transient
errors (database or connection lost) with exponential backoff, and records every other failure on the
``ImageAnalysis`` with a readable message.
"""
import logging

from celery import Task, shared_task
from celery.signals import worker_process_init

from .analysis import TRANSIENT_ERRORS, analyse_product_image
from .conf import settings

logger = logging.getLogger(__name__)


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


@shared_task(
    bind=True,
    base=AnalyseImageTask,
    name="recommender.analyse_image",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
)
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


@worker_process_init.connect(dispatch_uid="recommender.warm_up")
def warm_up_worker_process(**kwargs):
    """Each worker process loads the models as it starts (after the fork), in a background thread: the pool
    waits only a few seconds (``worker_proc_alive_timeout``) for a new process to report, so the process
    reports at once and a task arriving meanwhile waits for the models being loaded. Off with ``WARM_UP``."""
    from .warmup import start

    start()
