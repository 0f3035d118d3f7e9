"""How a shop tells the recommender what changed — the documented calls.

Call them after the change is committed (the ready-made receivers of the shipped adapters do, through
``transaction.on_commit``); each is cheap when there is nothing to do and never raises for a broker or a
cache that is down (the image stays "queued" and a warning is logged)::

    from recommender import hooks

    hooks.image_changed(image)       # a product image was added, or its file replaced → (re-)analysed
    hooks.image_removed(image)       # an image is no longer shown (deleted rows take their vectors with them)
    hooks.product_changed(product)   # price, stock, gender, colour, category… → copies next to vectors re-synced
    hooks.product_removed(product)   # a product is gone or no longer sold

    with hooks.defer_analysis():     # bulk imports: images are only marked "queued" (no broker: not run now);
        ...                          # ``manage.py analyse --pending`` (or the worker) analyses them afterwards

With a Celery broker, analyses are queued as ``recommender.analyse_image`` tasks, on the queue
``BUY_THE_LOOK["ANALYSIS_QUEUE"]`` (bulk re-indexing uses ``BULK_QUEUE``, served by other workers). Without one
(Celery's eager mode) they run in this process, right away, except inside ``defer_analysis()``.
"""
import contextlib
import logging
import threading

from celery import current_app

from . import cache as look_cache
from .conf import settings

logger = logging.getLogger(__name__)

BROKER_DOWN_MESSAGE = (
    "broker unavailable; analysis of image %s stays queued — run manage.py analyse --pending (%s)"
)

_state = threading.local()


@contextlib.contextmanager
def defer_analysis():
    """Inside this block images are only marked ``queued``; analyses that a worker would run are still sent."""
    previous = getattr(_state, "deferred", False)
    _state.deferred = True
    try:
        yield
    finally:
        _state.deferred = previous


def analysis_deferred():
    """True inside ``defer_analysis()``."""
    return bool(getattr(_state, "deferred", False))


def is_eager():
    return bool(current_app.conf.task_always_eager)


#: retries of a send while the broker connection is being re-established (about 1.5 s in all)
RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


def _apply(task, args, *, queue, failed, down, **options):
    """Send ``task`` with ``args`` on ``queue`` (None: Celery's default; eager: run it now). Returns False when the
    broker is down, logging ``down`` (a message and its arguments, the error appended); an eager run that raised is
    logged with ``failed`` and counts as sent."""
    try:
        task.apply_async(args, retry=True, retry_policy=RETRY_POLICY, **options, **({"queue": queue} if queue else {}))
    except Exception as exc:  # kombu OperationalError, ConnectionError, redis errors …
        if is_eager():
            logger.exception(*failed)
            return True
        logger.warning(*down, exc)
        return False
    return True


def queue_analysis(image_id, queue=None):
    """Send ``analyse_image`` for ``image_id`` (eager: run it now). Returns False when the broker is down.

    ``queue``: the Celery queue; by default ``BUY_THE_LOOK["ANALYSIS_QUEUE"]`` (None: Celery's default queue).
    Bulk work (``manage.py analyse --queue``, ``reindex --queue``) passes ``BULK_QUEUE``."""
    from .tasks import analyse_image

    return _apply(analyse_image, (image_id,), queue=queue or settings.ANALYSIS_QUEUE,
                  failed=("analysis of image %s raised", image_id), down=(BROKER_DOWN_MESSAGE, image_id))


def queue_batch(image_ids, queue=None):
    """Send one ``analyse_images`` task for the batch ``image_ids`` (bulk work; eager: run it now). Returns
    False when the broker is down. Its time limits are ``TASK_TIME_LIMIT`` per image of the batch."""
    from .tasks import analyse_images

    image_ids = list(image_ids)
    limit = settings.TASK_TIME_LIMIT * max(1, len(image_ids))
    return _apply(analyse_images, (image_ids,), queue=queue or settings.BULK_QUEUE, soft_time_limit=limit,
                  time_limit=limit + 60, failed=("analysis of images %s raised", image_ids),
                  down=(BROKER_DOWN_MESSAGE, ", ".join(map(str, image_ids))))


def _send(image_ids):
    if is_eager() and analysis_deferred():
        logger.debug("image(s) %s queued for manage.py analyse --pending", list(image_ids))
        return
    for image_id in image_ids:
        queue_analysis(image_id)


def look_analysed(product_ids):
    """Full shots of ``product_ids`` were analysed: with ``LOOK_CANDIDATES`` on, their look rows' candidate lists
    (``recommender.candidates``) are computed by a ``recommender.look_candidates`` task on ``BULK_QUEUE`` (eager:
    now). Never raises: without a broker the rows are searched live until ``manage.py look_candidates`` runs."""
    from .tasks import look_candidates

    product_ids = sorted({pk for pk in product_ids if pk is not None})
    if not settings.LOOK_CANDIDATES or not product_ids:
        return
    _apply(look_candidates, (product_ids,), queue=settings.BULK_QUEUE,
           failed=("candidate lists of products %s raised", product_ids),
           down=("broker unavailable; the look rows of products %s are searched live until manage.py "
                 "look_candidates runs (%s)", ", ".join(map(str, product_ids))))


def look_searched_live(product_id):
    """A product page searched rows of ``product_id``'s look live that could have read precomputed candidates (none
    yet, its category changed too much since, its article changed): queue a fresh computation of its lists, at most
    once per ``LISTS_REQUEUE_SECONDS`` per product (a cache key). Not in Celery's eager mode (no worker: the page
    itself would compute them) nor with the cache unreachable (no way to send it only once). Never raises."""
    if is_eager() or not settings.LOOK_CANDIDATES:
        return
    from django.core.cache import cache

    try:
        if not cache.add(f"buy-the-look:lists-queued:{product_id}", 1, timeout=LISTS_REQUEUE_SECONDS):
            return
    except Exception:  # the cache is down: the next page asks again
        return
    look_analysed([product_id])


#: How long a product page that searched its look live waits before it may queue its lists again.
LISTS_REQUEUE_SECONDS = 600


def image_changed(image):
    """``image`` (an instance of the adapter's image model) is new or its file changed: analyse it."""
    if not settings.ANALYSE_ON_SAVE or getattr(image, "pk", None) is None:
        return
    from .analysis import mark_queued

    mark_queued(image)
    look_cache.bump()
    _send([image.pk])


def image_removed(image):
    """``image`` is gone (or no longer shown): its analysis and vectors are deleted."""
    from .models import ImageAnalysis

    image_id = getattr(image, "pk", image)
    if image_id is not None:
        ImageAnalysis.objects.filter(image_id=image_id).delete()
    look_cache.bump()


def product_removed(product):
    """``product`` is deleted or withdrawn: it is no longer recommended (its vectors go with its rows)."""
    from .models import DetectedArticle

    product_id = getattr(product, "pk", product)
    if product_id is not None:
        DetectedArticle.objects.filter(product_id=product_id).update(is_active=False)
    look_cache.bump()


def product_changed(product):
    """``product``'s facts changed (price, stock, gender, colour, look category…): the copies stored next to
    its vectors are brought up to date; if its role as a recommendable article changed (another look
    category, it became an outfit), its images are analysed again."""
    from .sync import resync_product

    look_cache.bump()
    requeue = resync_product(product)
    if requeue and settings.ANALYSE_ON_SAVE:
        from .analysis import mark_queued

        for image_id in requeue:
            mark_queued(image_id)
        _send(requeue)
