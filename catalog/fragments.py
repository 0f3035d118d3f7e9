"""Cached pieces of the shop's pages.

The product page's "more like this" section depends on *other* products (their prices, whether they are active,
their card photos), so its HTML is cached under a catalogue version that every saved or deleted product and every
changed or deleted image bumps (``catalog.signals``, after the transaction commits), and for at most
``FRAGMENT_TIMEOUT`` seconds in any case. A page served from the cache runs one SQL query (the product itself).

The cache is an optimisation, never a dependency: when it cannot be reached (a shared Redis down), the section is
computed on every page and a warning is logged.
"""
import logging
import time

from django.core.cache import cache

VERSION_KEY = "catalog:version"
FRAGMENT_TIMEOUT = 600
logger = logging.getLogger(__name__)


def _warn(error):
    logger.warning("page fragment cache unavailable (%s: %s); working without it", type(error).__name__, error)


def _version():
    value = cache.get(VERSION_KEY)
    if value is None:
        # a fresh start (or an evicted version) never reuses an old number: fragments cached under it may live on
        cache.add(VERSION_KEY, time.time_ns(), timeout=None)
        value = cache.get(VERSION_KEY)
    return value


def bump(**kwargs):
    """A new catalogue version: every cached fragment is out of date. Signal receivers call it with kwargs."""
    try:
        cache.incr(VERSION_KEY)
    except ValueError:  # no version stored (or evicted): the next page starts a new one
        pass
    except Exception as error:
        _warn(error)


def cached(name, render):
    """The HTML ``render()`` returns, cached as ``name`` (a string naming the fragment and what it is of)."""
    try:
        key = f"catalog:{_version()}:{name}"
        html = cache.get(key)
    except Exception as error:
        _warn(error)
        return render()
    if html is None:
        html = render()
        try:
            cache.set(key, html, timeout=FRAGMENT_TIMEOUT)
        except Exception as error:
            _warn(error)
    return html
