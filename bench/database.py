"""The bench's own database: created next to the shop's (same server), migrated, dropped at the end.

``use_bench_database(name)`` points Django's default connection at ``name`` — before ``django.setup()``
when the bench runs as ``python -m bench`` (through ``DATABASE_URL``), or by swapping the connection's
``NAME`` when Django is already set up (the smoke test inside pytest); it returns a function that puts the
previous database back. The shop's own database is never written to.
"""
from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/shop"


def _bench_url(url, name):
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def use_bench_database(name):
    """Point Django's default database at ``name`` (set Django up if needed); returns ``restore()``."""
    import django
    from django.apps import apps

    if apps.ready:
        from django.db import connections

        connection = connections["default"]
        previous = connection.settings_dict["NAME"]
        if previous == name:
            return lambda: None
        connection.close()
        connection.settings_dict["NAME"] = name

        def restore():
            connection.close()
            connection.settings_dict["NAME"] = previous

        return restore

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    os.environ["DATABASE_URL"] = _bench_url(os.environ.get("DATABASE_URL", DEFAULT_URL), name)
    # Production-like request handling: no DEBUG query log, no SSL redirect for the in-process client.
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
    os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
    django.setup()
    return lambda: None


def server_params():
    """Connection keywords for psycopg from Django's default database settings (without the name)."""
    from django.db import connections

    settings = connections["default"].settings_dict
    params = {"host": settings.get("HOST") or None, "port": settings.get("PORT") or None,
              "user": settings.get("USER") or None, "password": settings.get("PASSWORD") or None}
    return {key: value for key, value in params.items() if value}


def connect(dbname, **kwargs):
    import psycopg

    return psycopg.connect(dbname=dbname, **server_params(), **kwargs)


def _refuse_shop_database(name):
    shop = urlsplit(DEFAULT_URL).path.lstrip("/")
    configured = urlsplit(os.environ.get("SHOP_DATABASE_URL", DEFAULT_URL)).path.lstrip("/")
    if name in {shop, configured, "postgres", "template0", "template1"} or name.startswith("test_"):
        raise SystemExit(f"--database {name!r}: the bench drops and recreates its database; choose a name "
                         f"of its own (e.g. shop_bench), never the shop's or a test database")


def recreate(name):
    """Drop ``name`` if it exists and create it empty."""
    from psycopg import sql

    _refuse_shop_database(name)
    from django.db import connections

    connections["default"].close()
    with connect("postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop(name):
    from django.db import connections
    from psycopg import sql

    _refuse_shop_database(name)
    connections["default"].close()
    with connect("postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def migrate():
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
