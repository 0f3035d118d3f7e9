"""``{% load buy_the_look %}{% buy_the_look product %}``: the "Buy the look" widget of a product page.

Renders ``recommender/widget.html`` — the product's full-shot photo with each detected article outlined and
one row of product cards per article — or nothing when the product has no full-shot analysis. The HTML is
cached (``BUY_THE_LOOK["CACHE_TIMEOUT"]``) under a version that every product or analysis change bumps.

Optional arguments: ``{% buy_the_look product k=8 %}``.
"""
import logging
from decimal import Decimal

from django import template
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from .. import cache as look_cache
from ..conf import settings
from ..looks import look_for

register = template.Library()
logger = logging.getLogger(__name__)


def group_by_image(rows):
    """``[{"image": ImageFacts, "rows": [LookRow, …]}, …]`` in the order of ``rows``."""
    looks = []
    for row in rows:
        if not looks or looks[-1]["image"] is not row.image:
            looks.append({"image": row.image, "rows": []})
        looks[-1]["rows"].append(row)
    return looks


def render_widget(product, k=None):
    # An article for which the shop has nothing (a dress detected in a men's look) is not shown at all.
    rows = [row for row in look_for(product, k=k) if row.recommendations]
    if not rows:
        return ""
    return render_to_string(
        "recommender/widget.html", {"product": product, "looks": group_by_image(rows), "k": k or settings.K}
    )


@register.simple_tag
def buy_the_look(product, k=None):
    if product is None or getattr(product, "pk", None) is None:
        return ""
    cached = look_cache.get("widget", product.pk, k or settings.K)
    if cached is not None:
        return mark_safe(cached)
    try:
        html = render_widget(product, k=k)
    except Exception:  # the product page must render even when the recommender cannot
        logger.exception("buy_the_look widget of product %s failed", product.pk)
        return ""
    look_cache.set(html, "widget", product.pk, k or settings.K)
    return mark_safe(html)


@register.filter
def look_price(value):
    """A price as ``BUY_THE_LOOK["PRICE_FORMAT"]`` shows it."""
    if value in (None, ""):
        return ""
    amount = Decimal(value).quantize(Decimal("0.01"))
    return settings.PRICE_FORMAT.format(amount=amount)


@register.filter
def boxes_of(rows):
    """``[(row, article), …]`` of every box drawn over a photo, largest first so smaller boxes lie on top
    (a bag over a top stays reachable by the pointer)."""
    pairs = [(row, article) for row in rows for article in row.articles]
    return sorted(pairs, key=lambda pair: -((pair[1].x2 - pair[1].x1) * (pair[1].y2 - pair[1].y1)))


@register.filter
def box_style(article):
    box = article.box_percent()
    return f"left:{box['left']}%;top:{box['top']}%;width:{box['width']}%;height:{box['height']}%"
