"""Widget cache: rendered looks are cached under a version number that any change bumps.

A changed product (catalog's ``product_changed``) or a stored analysis may change the recommendations
of *other* products, so invalidation is global: one integer, incremented; old entries expire by themselves.

The cache is an optimisation, never a dependency: when it is unreachable (a shared Redis down) every call here
logs a warning and degrades — nothing is read (the widget is rendered afresh), nothing is written, and a save
or an analysis still succeeds.
"""
import logging

from django.core.cache import cache

from .conf import settings

logger = logging.getLogger(__name__)

VERSION_KEY = "buy-the-look:version"


class CacheDown(Exception):
    pass


def _safely(operation, *args, **kwargs):
    try:
        return operation(*args, **kwargs)
    except ValueError:  # incr of a missing key: the caller's business
        raise
    except Exception as error:  # redis.exceptions.ConnectionError, TimeoutError, …
        logger.warning("widget cache unavailable (%s: %s); working without it", type(error).__name__, error)
        raise CacheDown() from error


def version():
    value = _safely(cache.get, VERSION_KEY)
    if value is None:
        _safely(cache.add, VERSION_KEY, 1, timeout=None)
        value = _safely(cache.get, VERSION_KEY) or 1
    return value


def bump(*args, **kwargs):
    try:
        try:
            _safely(cache.incr, VERSION_KEY)
        except ValueError:  # not set yet (or evicted)
            _safely(cache.set, VERSION_KEY, 2, timeout=None)
    except CacheDown:
        pass


def key(*parts):
    return "buy-the-look:" + ":".join(str(part) for part in (version(), *parts))


def get(*parts):
    try:
        return _safely(cache.get, key(*parts))
    except CacheDown:
        return None


def set(value, *parts):
    try:
        _safely(cache.set, key(*parts), value, timeout=settings.CACHE_TIMEOUT)
    except CacheDown:
        pass
