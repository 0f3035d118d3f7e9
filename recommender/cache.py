"""Widget cache: rendered looks are cached under a version number that any change bumps.

A changed product (catalog's ``product_changed``) or a stored analysis may change the recommendations
of *other* products, so invalidation is global: one integer, incremented; old entries expire by themselves.
"""
from django.core.cache import cache

from .conf import settings

VERSION_KEY = "buy-the-look:version"


def version():
    value = cache.get(VERSION_KEY)
    if value is None:
        cache.add(VERSION_KEY, 1, timeout=None)
        value = cache.get(VERSION_KEY) or 1
    return value


def bump(*args, **kwargs):
    try:
        cache.incr(VERSION_KEY)
    except ValueError:  # not set yet (or evicted)
        cache.set(VERSION_KEY, 2, timeout=None)


def key(*parts):
    return "buy-the-look:" + ":".join(str(part) for part in (version(), *parts))


def get(*parts):
    return cache.get(key(*parts))


def set(value, *parts):
    cache.set(key(*parts), value, timeout=settings.CACHE_TIMEOUT)
