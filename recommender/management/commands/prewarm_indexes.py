"""``manage.py prewarm_indexes [--database ALIAS] [--indexes-only]``: load the look query's HNSW indexes and the
article table into memory (``recommender.prewarm``), e.g. after the database server restarted, so that the first
product pages do not read them from disk. Run it against the read replica too when one serves the look reads
(``--database`` with its alias)."""
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from recommender.prewarm import PrewarmError, prewarm


class Command(BaseCommand):
    help = "Load the look query's HNSW indexes and the article table into PostgreSQL's memory (pg_prewarm)."

    def add_arguments(self, parser):
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS,
                            help="database alias (default: default; the replica's alias when one serves look reads)")
        parser.add_argument("--indexes-only", action="store_true", help="the HNSW indexes only, not the table")

    def handle(self, *args, **options):
        if options["database"] not in connections:
            raise CommandError(f"--database {options['database']!r}: no such database alias in DATABASES "
                               f"({', '.join(connections)})")
        try:
            result = prewarm(options["database"], table=not options["indexes_only"])
        except PrewarmError as error:
            raise CommandError(str(error)) from error
        where = {"buffer": "shared_buffers", "read": "the page cache"}
        for name, mode, mb, seconds in result.relations:
            self.stdout.write(f"{name}: {mb:,.1f} MB into {where[mode]} in {seconds:.2f} s")
        self.stdout.write(self.style.SUCCESS(
            f"prewarmed {len(result.relations)} relation(s) in {result.seconds:.2f} s: {result.mb('buffer'):,.1f} MB "
            f"into shared_buffers ({result.shared_buffers_mb:,.0f} MB), {result.mb('read'):,.1f} MB into the "
            f"operating system's page cache (what did not fit in 90 % of shared_buffers)"))
