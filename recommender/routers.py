"""``ReadReplicaRouter``: look and search reads to a PostgreSQL read replica, everything else to the primary.

Opt-in, two settings (docs/add-to-your-shop.md, "Read replica")::

    DATABASES["replica"] = {..., "HOST": "replica.internal", "TEST": {"MIRROR": "default"}}
    DATABASE_ROUTERS = ["recommender.routers.ReadReplicaRouter"]      # first, if you have other routers
    BUY_THE_LOOK = {..., "READ_REPLICA": "replica"}

What it decides (``None``: it has no opinion, the next router or Django's default decides):

- reads: to the replica only inside ``recommender.replica.look_reads()`` — the block ``look_for`` and
  ``search_by_photo`` run in (widget, look API, search by photo); every other read (admin, hooks, analyses, the
  shop's own pages) is left to the default, the primary;
- writes: never to the replica — an instance that was read from the replica is saved to "default";
- relations between instances of the primary and the replica are allowed (they are the same data);
- migrations never run on the replica (a standby is read-only; it receives the schema by replication).

Without ``READ_REPLICA`` the router answers None everywhere: installing it changes nothing.
"""
from django.db import DEFAULT_DB_ALIAS

from . import replica


class ReadReplicaRouter:
    """A Django database router; see the module docstring."""

    def db_for_read(self, model, **hints):
        return replica.active_alias()

    def db_for_write(self, model, **hints):
        alias = replica.setting()
        instance = hints.get("instance")
        if alias and instance is not None and getattr(instance._state, "db", None) == alias:
            return DEFAULT_DB_ALIAS
        return None

    def allow_relation(self, obj1, obj2, **hints):
        alias = replica.setting()
        if alias and {obj1._state.db, obj2._state.db} <= {DEFAULT_DB_ALIAS, alias}:
            return True
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if db == replica.setting():
            return False
        return None
