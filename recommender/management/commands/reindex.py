"""``manage.py reindex``: re-analyse every image whose stored model versions differ from the current pipeline's,
and every analysis whose vectors are missing (vectors are derived data: the database's image rows and the
media files are what must be backed up; the article vectors are rebuilt from them).

Vectors of different models must never be mixed: after a new detector or embedder is installed, run this.
``--queue [NAME]`` sends the re-analyses to Celery workers on a bulk queue (default ``BULK_QUEUE``,
"looks-bulk") instead of running them in this process. ``--dry-run`` only counts; ``--rebuild-index`` also rebuilds the HNSW indexes exactly as the model (and so
the migrations) defines them (``recommender.models.HNSW_M``/``HNSW_EF_CONSTRUCTION``).

After the shop switched product adapters (``BUY_THE_LOOK["PRODUCT_ADAPTER"]``) on a database that already
has vectors, the command first explains what must happen (the tables point at the old models) and stops.
"""
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.models import Count

from recommender.checks import adapter_table_mismatch
from recommender.models import DetectedArticle, ImageAnalysis

from .analyse import Command as AnalyseCommand
from .halfvec_indexes import float_indexes
from .analyse import add_queue_argument


class Command(BaseCommand):
    help = "Re-analyse images analysed with other model versions than the current pipeline's."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="only report what is stale")
        parser.add_argument("--rebuild-index", action="store_true", help="rebuild the HNSW index afterwards")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--no-progress", action="store_true")
        add_queue_argument(parser)

    def handle(self, *args, **options):
        from recommender import pipeline

        mismatch = adapter_table_mismatch()
        if mismatch:
            raise CommandError(mismatch)
        current = pipeline.current_versions()
        self.stdout.write("Current models: " + ", ".join(f"{k}={v}" for k, v in sorted(current.items())))
        stale, reasons = [], {}
        rows = ImageAnalysis.objects.filter(
            status__in=[ImageAnalysis.Status.DONE, ImageAnalysis.Status.SKIPPED]
        ).values_list("image_id", "model_versions")
        for image_id, versions in rows.iterator():
            changed = pipeline.stale_versions(versions, current)
            if changed:
                stale.append(image_id)
                for name in changed:
                    reasons[name] = reasons.get(name, 0) + 1
        # Vectors whose own version disagrees with the embedder (rows written by another process).
        odd = set(
            DetectedArticle.objects.exclude(model_version=current.get("embedder", ""))
            .values_list("analysis__image_id", flat=True).distinct()
        ) - set(stale)
        stale.extend(sorted(odd))
        if odd:
            reasons["vectors"] = len(odd)
        # Analyses marked done whose vectors are gone (a restored database without the article table, rows
        # deleted by hand): vectors are derived data, made again from the images.
        lost = set(
            ImageAnalysis.objects.filter(status=ImageAnalysis.Status.DONE)
            .annotate(n=Count("articles")).filter(n=0).values_list("image_id", flat=True)
        ) - set(stale)
        stale.extend(sorted(lost))
        if lost:
            reasons["vectors missing"] = len(lost)
        if not stale:
            self.stdout.write("Everything is up to date.")
        else:
            self.stdout.write(
                f"{len(stale)} image(s) to re-analyse ("
                + ", ".join(f"{name} changed: {n}" for name, n in sorted(reasons.items())) + ")."
            )
            if not options["dry_run"]:
                AnalyseCommand(stdout=self.stdout, stderr=self.stderr).run(sorted(stale), options)
        if options["rebuild_index"] and not options["dry_run"]:
            self.rebuild_index()

    def rebuild_index(self):
        """Drop and create again every HNSW index of ``DetectedArticle``, from its model definition."""
        indexes = float_indexes()
        with connection.schema_editor(atomic=False) as editor:
            for index in indexes:
                editor.execute(f"DROP INDEX IF EXISTS {editor.quote_name(index.name)}")
                editor.add_index(DetectedArticle, index)
                self.stdout.write(f"Rebuilt {index.name} (m={index.m}, ef_construction={index.ef_construction}).")
