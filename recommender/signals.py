"""How the recommender follows the catalogue.

- ``catalog.signals.product_image_changed`` (after commit) → the image's analysis is marked ``queued`` and
  ``analyse_image`` is sent to the broker. Without a broker (Celery eager) the analysis runs right away in
  this process, except inside the bulk commands of ``BUY_THE_LOOK["EAGER_DEFER_COMMANDS"]`` or a
  ``defer_analysis()`` block, where images only stay ``queued`` for ``manage.py analyse --pending``.
  When the broker is down the image is still saved; its analysis stays ``queued`` and a warning says so.
- ``catalog.signals.product_changed`` → the product's copies on its articles (active flag, colour, price,
  gender) are brought up to date, images whose inventory role changed are re-analysed, and the widget
  cache is invalidated.
"""
import contextlib
import logging
import sys
import threading

from celery import current_app
from django.apps import apps
from django.dispatch import receiver

from catalog.signals import product_changed, product_image_changed

from . import cache as look_cache
from .conf import settings

logger = logging.getLogger(__name__)

BROKER_DOWN_MESSAGE = (
    "broker unavailable; analysis of image %s stays queued — run manage.py analyse --pending (%s)"
)

_state = threading.local()


@contextlib.contextmanager
def defer_analysis():
    """Inside this block new images are only marked ``queued`` (bulk imports in eager mode)."""
    previous = getattr(_state, "deferred", False)
    _state.deferred = True
    try:
        yield
    finally:
        _state.deferred = previous


def is_eager():
    return bool(current_app.conf.task_always_eager)


def running_commands():
    """Names of the management commands on this thread's call stack (``call_command`` included)."""
    names = []
    frame = sys._getframe(1)
    while frame is not None:
        path = frame.f_code.co_filename.replace("\\", "/")
        if "/management/commands/" in path and path.endswith(".py"):
            names.append(path.rsplit("/", 1)[-1][:-3])
        frame = frame.f_back
    return names


def analysis_deferred():
    """True inside ``defer_analysis()`` or while one of ``EAGER_DEFER_COMMANDS`` runs."""
    if getattr(_state, "deferred", False):
        return True
    deferring = set(settings.EAGER_DEFER_COMMANDS)
    if len(sys.argv) > 1 and sys.argv[1] in deferring:
        return True
    return bool(deferring.intersection(running_commands()))


def queue_analysis(image_id):
    """Send ``analyse_image`` for ``image_id`` (eager: run it now). Returns False when the broker is down."""
    from .tasks import analyse_image

    try:
        analyse_image.apply_async(
            (image_id,),
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
        )
    except Exception as exc:  # kombu OperationalError, ConnectionError, redis errors …
        if is_eager():
            logger.exception("analysis of image %s raised", image_id)
            return True
        logger.warning(BROKER_DOWN_MESSAGE, image_id, exc)
        return False
    return True


@receiver(product_image_changed, dispatch_uid="recommender.image_changed")
def image_changed(sender, image, created=False, **kwargs):
    if not settings.ANALYSE_ON_SAVE:
        return
    from .analysis import mark_queued

    mark_queued(image)
    look_cache.bump()
    if is_eager() and analysis_deferred():
        logger.debug("image %s queued for manage.py analyse --pending", image.pk)
        return
    queue_analysis(image.pk)


@receiver(product_changed, dispatch_uid="recommender.product_changed")
def product_updated(sender, product, **kwargs):
    look_cache.bump()
    from .analysis import own_category
    from .models import DetectedArticle, ImageAnalysis

    Product = apps.get_model(settings.PRODUCT_MODEL)
    if product.pk is None or not Product.objects.filter(pk=product.pk).exists():
        return  # deleted: its articles went with it (cascade)
    rows = DetectedArticle.objects.filter(product_id=product.pk)
    colour = (product.base_colour or "").strip().lower()
    rows.exclude(is_active=product.is_active, base_colour=colour, price=product.price).update(
        is_active=product.is_active, base_colour=colour, price=product.price
    )
    if product.gender:
        rows.filter(is_inventory=True).exclude(gender=product.gender).update(gender=product.gender)
    # Its inventory role changed (new look category, became an outfit…): analyse its images again.
    own = own_category(product)
    analysed = ImageAnalysis.objects.filter(
        image__product_id=product.pk, status__in=[ImageAnalysis.Status.DONE, ImageAnalysis.Status.SKIPPED]
    )
    if not analysed.exists():
        return
    wrong = rows.filter(is_inventory=True).exclude(category=own).exists()
    missing = bool(own) and not rows.filter(is_inventory=True).exists()
    if (wrong or missing) and settings.ANALYSE_ON_SAVE:
        from .analysis import mark_queued

        for analysis in analysed:
            mark_queued(analysis.image_id)
            if not (is_eager() and analysis_deferred()):
                queue_analysis(analysis.image_id)
