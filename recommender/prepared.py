"""The product page's look statement as a server-side prepared statement of its database connection.

The statement that reads a look's articles with each row's products (``queries.look_hits_sql``) is long (about
13 KB of SQL: one branch per look category and one for precomputed candidates). PostgreSQL's parse, analysis and
planning of it cost about as much as running it with precomputed candidates (`make bench` reports planning next to
execution; ``python -m bench.ab PREPARED_STATEMENTS false true`` measures the product page both ways on the shop's
database). Sent with Django's default client-side binding, every product page pays them again. With
``BUY_THE_LOOK["PREPARED_STATEMENTS"]`` (on by default) the query runs on a psycopg 3 server-binding cursor of the
same connection with ``prepare=True``: the first page on a connection prepares it, the next ones only bind the
product's id and execute. Everything that decides the plan (categories, limits, ``ef_search``, weights) is part of
the statement's text, not a parameter, so PostgreSQL's generic plan is the plan of every product's page, and the
per-category partial HNSW indexes are still chosen.

The cursor is wrapped by Django's own cursor wrapper, so execute wrappers, ``connection.queries`` and
``assertNumQueries`` see the statement like any other. Prepared statements live as long as the connection
(``CONN_MAX_AGE``); psycopg keeps at most ``prepared_max`` of them per connection.

Turn it off behind a transaction-mode connection pooler that does not carry prepared statements across server
connections (PgBouncer before 1.21, or without ``max_prepared_statements``), or with a driver other than psycopg 3.
"""
from __future__ import annotations

import copy
import functools
import uuid

from django.core.exceptions import EmptyResultSet
from django.core.signals import setting_changed
from django.db import connections
from django.db.backends.utils import CursorDebugWrapper
from django.db.models.query import ModelIterable
from django.db.models.sql.constants import GET_ITERATOR_CHUNK_SIZE, MULTI
from django.dispatch import receiver

from .conf import settings

TIMESTAMPTZ_OID = 1184
#: psycopg's prepare_threshold that only ``execute(..., prepare=True)`` reaches
ON_REQUEST_ONLY = 2**31 - 1


def available(connection):
    """Whether ``connection`` (a Django database wrapper) can run prepared statements: PostgreSQL with psycopg 3."""
    if connection.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3


def prepared(queryset):
    """``queryset`` whose rows are read with a prepared statement (when the setting is on and the database can)."""
    if settings.PREPARED_STATEMENTS:
        queryset._iterable_class = PreparedModelIterable
    return queryset


def instances(key, build, pk):
    """``list(build(pk))``: the model instances of a queryset that differs only by the primary key ``pk`` from one
    call to the next, read with a prepared statement, its SQL compiled by Django once per ``key`` and database (the
    ORM's building and compiling of the look's query cost about as much as PostgreSQL's run of the prepared
    statement).

    The places of ``pk`` among the statement's parameters are found by compiling it for a second key of the same
    type; a key type without a known second value is compiled every time. Settings changes drop the compiled
    statements."""
    if not settings.PREPARED_STATEMENTS:
        return list(build(pk))
    entry = _compiled.get(key)
    if entry is None:
        queryset = build(pk)
        if not available(connections[queryset.db]):
            return list(queryset)
        entry = _compile(queryset, build, pk)
        if entry is None:
            return list(prepared(queryset))
        _compiled[key] = entry
    template, compiler, sql, params, slots = entry
    queryset = template._chain()
    connection = connections[queryset.db]  # this read's database (a read replica, say): the same SQL
    if not available(connection):
        return list(build(pk))
    params = list(params)
    for slot in slots:
        params[slot] = pk
    compiler = copy.copy(compiler)  # shared by threads: this call's own, on this thread's connection
    compiler.connection = connection
    compiler.execute_sql = lambda *args, **kwargs: _execute(connection, sql, params)
    queryset._iterable_class = PreparedModelIterable
    queryset._precompiled = compiler
    return list(queryset)


def _compile(queryset, build, pk):
    other = _other_key(pk)
    if other is None:
        return None
    using = queryset.db
    compiler = queryset.query.get_compiler(using=using)
    try:
        sql, params = compiler.as_sql()
        other_sql, other_params = build(other).query.get_compiler(using=using).as_sql()
    except EmptyResultSet:
        return None
    slots = [index for index, (one, two) in enumerate(zip(params, other_params)) if one != two]
    if sql != other_sql or len(params) != len(other_params) or not slots or any(params[i] != pk for i in slots):
        return None
    return queryset, compiler, sql, tuple(params), tuple(slots)


def _other_key(pk):
    """A second primary key of ``pk``'s type (its value does not matter), or None."""
    if isinstance(pk, bool):
        return None
    if isinstance(pk, int):
        return pk + 1
    if isinstance(pk, str):
        return pk + "-"
    if isinstance(pk, uuid.UUID):
        return uuid.UUID(int=pk.int ^ 1)
    return None


_compiled = {}


@receiver(setting_changed)
def _forget_statements(**kwargs):
    _compiled.clear()


class PreparedModelIterable(ModelIterable):
    """Django's model iterable, with the query executed by ``execute_prepared`` (same SQL, same parameters), or by
    the queryset's ``_precompiled`` compiler (``instances``)."""

    def __iter__(self):
        query = self.queryset.query
        get_compiler = query.get_compiler
        precompiled = getattr(self.queryset, "_precompiled", None)

        def prepared_compiler(*args, **kwargs):
            if precompiled is not None:
                return precompiled
            compiler = get_compiler(*args, **kwargs)
            if available(compiler.connection):
                compiler.execute_sql = lambda *a, **k: execute_prepared(compiler, *a, **k)
            return compiler

        query.get_compiler = prepared_compiler
        try:
            yield from super().__iter__()
        finally:
            del query.get_compiler


def execute_prepared(compiler, result_type=MULTI, chunked_fetch=False, chunk_size=GET_ITERATOR_CHUNK_SIZE):
    """``compiler.execute_sql`` for a query read in full (``MULTI``): the same rows, from a prepared statement."""
    if result_type != MULTI:
        raise ValueError("prepared statements read whole result sets only")
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        return iter([])
    return _execute(compiler.connection, sql, params)


def _execute(connection, sql, params):
    with _cursor(connection) as cursor:
        cursor.execute(sql, params)
        return [cursor.fetchall()]


@functools.cache
def _preparing_cursor_class():
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparingCursor(ServerBindingCursor):
        """Django's server-binding psycopg cursor, preparing every statement it executes."""

        def execute(self, query, params=None, *, prepare=None, binary=None):
            return super().execute(query, params, prepare=True if prepare is None else prepare, binary=binary)

    return PreparingCursor


def _cursor(connection):
    """A Django cursor wrapper (query log and execute wrappers included) around a psycopg 3 server-binding cursor
    of ``connection`` that prepares what it executes."""
    from django.db.backends.postgresql.psycopg_any import register_tzloader
    from psycopg.pq import Format

    connection.ensure_connection()
    if connection.connection.prepare_threshold is None:
        # Django turns psycopg's prepared statements off (OPTIONS "prepare_threshold", default None), and then even
        # prepare=True does not prepare. A threshold no statement reaches prepares only what asks for it: Django's
        # own cursors bind client-side and never prepare, and server-binding ones keep executing unprepared.
        connection.connection.prepare_threshold = ON_REQUEST_ONLY
    raw = _preparing_cursor_class()(connection.connection)
    # as Django's own cursors: the connection's time zone for timestamptz when it differs from the server's
    loader = connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
    if connection.timezone != getattr(loader, "timezone", connection.timezone):
        register_tzloader(connection.timezone, raw)
    return _LoggedCursor(raw, connection) if connection.queries_logged else connection.make_cursor(raw)


class _LoggedCursor(CursorDebugWrapper):
    """Django's query-logging cursor wrapper; the statement is logged with its parameters in place, as Django's
    own cursors log theirs (Django would read it back from a client-side cursor)."""

    def debug_sql(self, sql=None, params=None, use_last_executed_query=False, many=False):
        try:
            sql = self.db.ops.compose_sql(sql, params)
        except Exception:  # logged as written: the statement itself runs (or fails) the same
            pass
        return super().debug_sql(sql, params, use_last_executed_query=False, many=many)
