"""Keeping the copies of product facts next to the vectors in step with the shop.

``DetectedArticle`` rows hold the facts a look query filters on (availability, gender, colour, price, kind
of article), copied from the adapter's ``ProductFacts`` when the image is analysed. ``resync_product`` copies
them again after the shop says a product changed (``recommender.hooks.product_changed``), in one UPDATE
per changed value, and tells which images must be analysed again because the product's role changed (it
has a new look category, or became an outfit).
"""
import logging

from .adapters import ProductFacts
from .conf import settings

logger = logging.getLogger(__name__)


def describe(product) -> ProductFacts | None:
    """The adapter's facts of ``product``, or None when the adapter fails on it (logged; never raised)."""
    try:
        return settings.adapter.describe(product)
    except Exception:
        logger.exception("the product adapter could not describe product %s", getattr(product, "pk", product))
        return None


def own_category(facts: ProductFacts | None) -> str:
    """The look category in which a product is recommended ("" when none, or when it cannot be described)."""
    if facts is None:
        return ""
    return facts.look_category if facts.look_category in settings.CATEGORIES else ""


def filter_copies(facts: ProductFacts | None) -> dict:
    """The ``DetectedArticle`` columns copied from a product's facts."""
    if facts is None:  # undescribable: stored, but never a candidate
        return {"is_active": False, "base_colour": "", "price": None, "article_type": ""}
    return {
        "is_active": bool(facts.is_available),
        "base_colour": (facts.colour or "")[:32],
        "price": facts.price,
        "article_type": (facts.article_type or "")[:64],
    }


def resync_product(product) -> list:
    """Bring the copies on ``product``'s articles up to date; return ids of images to analyse again."""
    from .models import DetectedArticle, ImageAnalysis

    adapter = settings.adapter
    if product is None or product.pk is None:
        return []
    if not adapter.get_product_model()._default_manager.filter(pk=product.pk).exists():
        return []  # deleted: its articles went with it (cascade)
    facts = describe(product)
    rows = DetectedArticle.objects.filter(product_id=product.pk)
    copies = filter_copies(facts)
    # the shop's colour word is part of its own article's colour descriptor: a new one means a new analysis
    recolour = rows.filter(is_inventory=True).exclude(base_colour=copies["base_colour"]).exists()
    rows.exclude(**copies).update(**copies)
    gender = facts.gender if facts else ""
    rows.filter(is_inventory=True).exclude(gender=gender).update(gender=gender)
    analysed = list(ImageAnalysis.objects.filter(
        product_id=product.pk, status__in=[ImageAnalysis.Status.DONE, ImageAnalysis.Status.SKIPPED]
    ).values_list("image_id", flat=True))
    if not analysed:
        return []
    own = own_category(facts)
    inventory = rows.filter(is_inventory=True)
    wrong = inventory.exclude(category=own).exists() if own else inventory.exists()
    missing = bool(own) and not inventory.exists()
    return analysed if (wrong or missing or recolour) else []
