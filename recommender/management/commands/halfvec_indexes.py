"""``manage.py halfvec_indexes``: half-precision HNSW indexes, for ``BUY_THE_LOOK["HALFVEC"] = True``.

For each float HNSW index of the article table (the migrations' indexes), creates an HNSW index over the
vectors' half-precision copies (``embedding::halfvec(256)``, pgvector's ``halfvec``) with the same condition
and build parameters: half the size, so half the memory a catalogue's indexes need to stay in RAM. The look
query uses them once ``HALFVEC`` is on; its candidates are still re-ordered by their full-precision distance.

- no option: create the missing halfvec indexes, and rebuild those built with other HNSW parameters than the
  model's (after a migration changed them); the float ones stay; nothing changes until ``HALFVEC`` is on;
- ``--drop-float``: then drop the float HNSW indexes (the memory saving; only with ``HALFVEC`` on);
- ``--restore``: create the float HNSW indexes again (as the migrations define them) and drop the halfvec ones.

Building takes about as long as the float indexes (docs/benchmarks-1m.md has the figures at 1M articles).
"""
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connection, connections
from pgvector.django import HnswIndex

from recommender.conf import EMBEDDING_DIM, settings
from recommender.models import DetectedArticle


def float_indexes():
    return [index for index in DetectedArticle._meta.indexes if isinstance(index, HnswIndex)]


def halfvec_name(index):
    return index.name.replace("hnsw", "halfvec")


def halfvec_sql(index, editor):
    """CREATE INDEX of the half-precision twin of one of the model's float HNSW indexes: the float index's own
    statement (name, condition, build parameters as the migrations make them) over the halfvec cast."""
    sql = str(index.create_sql(DetectedArticle, editor))
    column = '("embedding" vector_cosine_ops)'
    if column not in sql:
        raise CommandError(f"unexpected definition of {index.name}: {sql}")
    sql = sql.replace(column, f'(("embedding"::halfvec({EMBEDDING_DIM})) halfvec_cosine_ops)')
    return sql.replace(editor.quote_name(index.name), editor.quote_name(halfvec_name(index)), 1)


def existing_indexes(using=DEFAULT_DB_ALIAS):
    """Names of the article table's indexes in the database ``using``."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [DetectedArticle._meta.db_table])
        return {row[0] for row in cursor.fetchall()}


def build_parameters(name, using=DEFAULT_DB_ALIAS):
    """The HNSW build parameters an existing index was made with, e.g. ``{"m": 16, "ef_construction": 64}``
    (PostgreSQL keeps them as the index's storage options)."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s AND relkind = 'i'", [name])
        row = cursor.fetchone()
    options = dict(option.split("=", 1) for option in (row[0] or [])) if row else {}
    return {key: int(value) for key, value in options.items() if key in ("m", "ef_construction")}


class Command(BaseCommand):
    help = "Create (or drop) the half-precision HNSW indexes the HALFVEC setting searches."

    def add_arguments(self, parser):
        parser.add_argument("--maintenance-work-mem", default=None, metavar="SIZE",
                            help="PostgreSQL maintenance_work_mem for the builds, e.g. 2GB (an HNSW build is much "
                                 "faster when its graph fits; default: the server's setting)")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--drop-float", action="store_true",
                           help="after creating the halfvec indexes, drop the float HNSW indexes (needs HALFVEC on)")
        group.add_argument("--restore", action="store_true",
                           help="create the float HNSW indexes again and drop the halfvec ones")

    def handle(self, *args, **options):
        if options["drop_float"] and not settings.HALFVEC:
            raise CommandError('--drop-float: BUY_THE_LOOK["HALFVEC"] is off, so the look query still searches '
                               "the float indexes; turn it on first (or create the halfvec indexes without this "
                               "option and switch afterwards).")
        present = existing_indexes()
        if options["maintenance_work_mem"]:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('maintenance_work_mem', %s, false)", [options["maintenance_work_mem"]])
        with connection.schema_editor(atomic=False) as editor:
            if options["restore"]:
                for index in float_indexes():
                    if index.name not in present:
                        self.stdout.write(f"creating {index.name} …")
                        editor.add_index(DetectedArticle, index)
                    if halfvec_name(index) in present:
                        editor.execute(f"DROP INDEX IF EXISTS {editor.quote_name(halfvec_name(index))}")
                        self.stdout.write(f"dropped {halfvec_name(index)}")
                if settings.HALFVEC:
                    self.stdout.write(self.style.WARNING('BUY_THE_LOOK["HALFVEC"] is still on: turn it off, or the '
                                                         "look query finds no index to search."))
                return
            for index in float_indexes():
                name = halfvec_name(index)
                built = build_parameters(name) if name in present else None
                if built == {"m": index.m, "ef_construction": index.ef_construction}:
                    self.stdout.write(f"{name} exists")
                    continue
                if built is not None:  # built with other parameters than the model's (a migration changed them)
                    # Built beside the old one and swapped in, so the look query always has an index to search.
                    self.stdout.write(f"rebuilding {name}: built with {built}, the model's indexes now use "
                                      f"m={index.m}, ef_construction={index.ef_construction} …")
                    fresh = f"{name}_rebuilt"
                    editor.execute(f"DROP INDEX IF EXISTS {editor.quote_name(fresh)}")
                    editor.execute(halfvec_sql(index, editor).replace(editor.quote_name(name),
                                                                      editor.quote_name(fresh), 1))
                    editor.execute(f"DROP INDEX {editor.quote_name(name)}")
                    editor.execute(f"ALTER INDEX {editor.quote_name(fresh)} RENAME TO {editor.quote_name(name)}")
                    continue
                self.stdout.write(f"creating {name} …")
                editor.execute(halfvec_sql(index, editor))
            if options["drop_float"]:
                for index in float_indexes():
                    editor.execute(f"DROP INDEX IF EXISTS {editor.quote_name(index.name)}")
                    self.stdout.write(f"dropped {index.name}")
        with connection.cursor() as cursor:
            cursor.execute("SELECT coalesce(sum(pg_relation_size(indexrelid)), 0) FROM pg_index "
                           "JOIN pg_class ON pg_class.oid = indexrelid WHERE relname LIKE 'recommender_%%halfvec%%'")
            size = cursor.fetchone()[0]
        self.stdout.write(self.style.SUCCESS(f"halfvec indexes ready ({size / 2**20:.1f} MB)"
                                             + ("" if settings.HALFVEC else '; turn BUY_THE_LOOK["HALFVEC"] on to '
                                                                            "search them")))
