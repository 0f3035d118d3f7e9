"""``{% load catalog_tags %}``: small helpers of the shop's templates."""
from decimal import Decimal, InvalidOperation

from django import template
from django.conf import settings
from django.urls import NoReverseMatch, reverse

register = template.Library()


@register.filter
def money(value):
    """``Decimal("23.99")`` → ``€23.99`` (symbol from ``settings.CATALOG_CURRENCY_SYMBOL``)."""
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return ""
    return f"{getattr(settings, 'CATALOG_CURRENCY_SYMBOL', '€')}{amount:,.2f}"


@register.simple_tag
def optional_url(name, *args):
    """The URL of ``name``, or "" when no such URL is configured (e.g. an app that is not installed)."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""
