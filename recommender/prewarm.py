"""Warm the look query's data into memory after a database restart (``manage.py prewarm_indexes``).

A look query walks an HNSW graph: a few hundred index pages and the article rows it reaches. Right after
PostgreSQL starts, none of them is in memory, and the first product pages read them from disk one by one. At a
million articles that is most of a page's time (docs/benchmarks-1m.md). ``prewarm`` loads, with PostgreSQL's
``pg_prewarm`` extension, the per-category HNSW indexes the look query searches (the float ones, or the half-precision ones
when ``BUY_THE_LOOK["HALFVEC"]`` is on) and then the article table:

- into ``shared_buffers`` (mode ``buffer``) as long as they fit in 90 % of it, the indexes first;
- the rest into the operating system's page cache (mode ``read``), where PostgreSQL finds them without a disk
  read; loading more than ``shared_buffers`` holds would only evict the pages loaded first.

For restarts without a manual step, PostgreSQL's own ``pg_prewarm.autoprewarm`` (``shared_preload_libraries =
'pg_prewarm'``) saves and reloads the buffers by itself; this is for a first start, a new replica or a re-index.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

from .conf import settings
from .models import DetectedArticle


class PrewarmError(Exception):
    """The database cannot prewarm (no ``pg_prewarm`` and no right to create it); the message says what to do."""


@dataclass
class Prewarmed:
    shared_buffers_mb: float
    #: [(name, mode, MB, seconds)]; mode "buffer" (shared_buffers) or "read" (the operating system's page cache)
    relations: list = field(default_factory=list)

    def mb(self, mode=None) -> float:
        return round(sum(mb for _, m, mb, _ in self.relations if mode in (None, m)), 1)

    @property
    def seconds(self) -> float:
        return round(sum(s for *_, s in self.relations), 2)

    def as_dict(self) -> dict:
        return {"shared_buffers_mb": self.shared_buffers_mb, "total_mb": self.mb(),
                "into_shared_buffers_mb": self.mb("buffer"), "into_page_cache_mb": self.mb("read"),
                "seconds": self.seconds,
                "relations": [{"name": n, "mode": m, "mb": mb, "seconds": s} for n, m, mb, s in self.relations]}


def searched_indexes(using=DEFAULT_DB_ALIAS) -> list[str]:
    """Names of the HNSW indexes the look query searches (one per look category; not the one over all categories
    that only a search by photo without a category uses) that exist in the database ``using``."""
    from .management.commands.halfvec_indexes import existing_indexes, float_indexes, halfvec_name

    per_category = [index for index in float_indexes()
                    if "category" in dict(index.condition.children if index.condition else ())]
    names = [halfvec_name(index) if settings.HALFVEC else index.name for index in per_category]
    present = existing_indexes(using)
    return [name for name in names if name in present]


def _ensure_extension(cursor, using):
    cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_prewarm'")
    if cursor.fetchone():
        return
    try:
        with transaction.atomic(using=using):
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    except DatabaseError as error:
        raise PrewarmError(
            f"the PostgreSQL extension pg_prewarm is not installed in this database and this user may not create it "
            f"({str(error).strip().splitlines()[0]}). Ask the database administrator to run "
            f"'CREATE EXTENSION pg_prewarm;' in it (it ships with PostgreSQL)."
        ) from error


def prewarm(using=DEFAULT_DB_ALIAS, *, table=True) -> Prewarmed:
    """Load the searched HNSW indexes (then, with ``table``, the article table) of the database ``using`` into
    memory; raises ``PrewarmError`` when the database cannot."""
    names = searched_indexes(using)
    if table:
        names.append(DetectedArticle._meta.db_table)
    with connections[using].cursor() as cursor:
        _ensure_extension(cursor, using)
        cursor.execute("SELECT pg_size_bytes(current_setting('shared_buffers')), current_setting('block_size')::int")
        buffers, block = cursor.fetchone()
        result = Prewarmed(shared_buffers_mb=round(buffers / 2**20, 1))
        loaded = 0
        for name in names:
            cursor.execute("SELECT pg_relation_size(%s::regclass)", [name])
            size = cursor.fetchone()[0]
            # what fits in 90 % of shared_buffers goes there; more would evict what was loaded first
            mode = "buffer" if loaded + size <= 0.9 * buffers else "read"
            loaded += size if mode == "buffer" else 0
            started = time.perf_counter()
            cursor.execute("SELECT pg_prewarm(%s::regclass, %s)", [name, mode])
            blocks = cursor.fetchone()[0]
            result.relations.append((name, mode, round(blocks * block / 2**20, 1),
                                     round(time.perf_counter() - started, 2)))
    return result
