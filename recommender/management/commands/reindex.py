"""``manage.py reindex``: re-analyse every image whose stored model versions differ from the current pipeline's.

Vectors of different models must never be mixed: after a new detector or embedder is installed, run this.
``--dry-run`` only counts; ``--rebuild-index`` also rebuilds the HNSW index with BUY_THE_LOOK's HNSW_M and
HNSW_EF_CONSTRUCTION.
"""
from django.core.management.base import BaseCommand
from django.db import connection

from recommender.conf import settings
from recommender.models import DetectedArticle, ImageAnalysis

from .analyse import Command as AnalyseCommand

INDEX_NAME = "recommender_inventory_hnsw"


class Command(BaseCommand):
    help = "Re-analyse images analysed with other model versions than the current pipeline's."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="only report what is stale")
        parser.add_argument("--rebuild-index", action="store_true", help="rebuild the HNSW index afterwards")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        from recommender import pipeline

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
        from catalog.taxonomy import LOOK_CATEGORIES

        m, ef = int(settings.HNSW_M), int(settings.HNSW_EF_CONSTRUCTION)
        table = DetectedArticle._meta.db_table
        indexes = [(INDEX_NAME, "")] + [(f"recommender_hnsw_{c}", f" AND category = '{c}'") for c in LOOK_CATEGORIES]
        with connection.cursor() as cursor:
            for name, extra in indexes:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
                cursor.execute(
                    f"CREATE INDEX {name} ON {table} USING hnsw (embedding vector_cosine_ops) "
                    f"WITH (m = {m}, ef_construction = {ef}) WHERE is_inventory AND is_active{extra}"
                )
                self.stdout.write(f"Rebuilt {name} (m={m}, ef_construction={ef}).")
