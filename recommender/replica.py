"""Look and search reads from a PostgreSQL read replica (``BUY_THE_LOOK["READ_REPLICA"]``, off by default).

``look_for`` and ``search_by_photo`` run inside ``look_reads()``::

    with replica.look_reads() as db:          # the connection their raw SQL uses
        ...                                   # ORM reads here go to the same database (ReadReplicaRouter)

- ``READ_REPLICA`` unset: ``db`` is the "default" connection and nothing is routed (the behaviour without a replica).
- Set to an alias of ``DATABASES`` (a hot standby of "default"): ``db`` is that connection, and
  ``recommender.routers.ReadReplicaRouter`` sends every ORM read made inside the block there (the recommender's
  articles and analyses, and whatever the shop's adapter reads for the cards). Reads outside the block (admin,
  hooks, analyses, the shop's own pages) and all writes stay on "default".
- Read your own writes: inside a transaction on "default" (``transaction.atomic()``, ``ATOMIC_REQUESTS``) the
  block stays on "default" — the replica cannot see what that transaction has not committed yet.
- The replica is down (its connection fails): the block falls back to "default" and logs a warning.

Misconfiguration is an ``ImproperlyConfigured`` naming the setting: an alias missing from ``DATABASES``, or
``ReadReplicaRouter`` missing from ``DATABASE_ROUTERS`` (the cards would silently be read from the primary).
"""
import contextlib
import contextvars
import logging

from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, router
from django.utils.connection import ConnectionDoesNotExist

from .conf import settings

logger = logging.getLogger(__name__)

#: The alias ORM reads are routed to inside ``look_reads()`` (None: not routed).
_active = contextvars.ContextVar("buy_the_look_read_alias", default=None)


def setting():
    """``BUY_THE_LOOK["READ_REPLICA"]`` as it is (None when unset), unchecked: what the router compares with."""
    return settings.READ_REPLICA or None


def configured_alias():
    """``BUY_THE_LOOK["READ_REPLICA"]``, checked against ``DATABASES`` and ``DATABASE_ROUTERS``; None when unset."""
    alias = settings.READ_REPLICA
    if not alias:
        return None
    try:
        connections[alias]
    except ConnectionDoesNotExist:
        raise ImproperlyConfigured(
            f"BUY_THE_LOOK['READ_REPLICA'] = {alias!r} is not a key of DATABASES; add the replica's connection "
            f"settings under that alias (docs/add-to-your-shop.md, 'Read replica')") from None
    from .routers import ReadReplicaRouter

    if not any(isinstance(item, ReadReplicaRouter) for item in router.routers):
        raise ImproperlyConfigured(
            f"BUY_THE_LOOK['READ_REPLICA'] = {alias!r} needs 'recommender.routers.ReadReplicaRouter' in "
            f"DATABASE_ROUTERS (first), so that the cards of a look are read from the replica too")
    return alias


def active_alias():
    """The alias reads are routed to right now (inside ``look_reads()`` with a replica), else None."""
    return _active.get()


def _choose():
    current = _active.get()
    if current:
        return current  # nested: keep the outer block's choice
    alias = configured_alias()
    if alias is None or alias == DEFAULT_DB_ALIAS:
        return None
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return None  # read your own (uncommitted) writes
    try:
        connections[alias].ensure_connection()
    except DatabaseError as exc:
        logger.warning("read replica %r unavailable, looks are read from %r: %s", alias, DEFAULT_DB_ALIAS, exc)
        return None
    return alias


@contextlib.contextmanager
def look_reads():
    """Route this block's reads to the read replica (when configured); yields the connection for raw SQL."""
    alias = _choose()
    token = _active.set(alias)
    try:
        yield connections[alias or DEFAULT_DB_ALIAS]
    finally:
        _active.reset(token)


def read_connection():
    """The connection look queries use now: the replica inside ``look_reads()`` (when configured), else "default"."""
    return connections[_active.get() or DEFAULT_DB_ALIAS]
