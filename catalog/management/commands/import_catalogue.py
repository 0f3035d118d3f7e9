"""manage.py import_catalogue --styles CSV --images DIR [--limit N]

Upserts products by SKU (= the styles.csv ``id``) and attaches ``DIR/<id>.jpg`` as each product's primary
image. Bad rows (with their line number and the reason) and missing or broken images are reported and
skipped; the rest is imported. A second run of the same files writes nothing. Prices are derived from the
article type and the id (styles.csv has none): see ``catalog/pricing.py``.
"""
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.importing import BadRow, import_catalogue


def count_lines(path):
    with open(path, "rb") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


def print_summary(command, summary, seconds, max_problems):
    for where, message in summary.problems[:max_problems]:
        command.stderr.write(f"{where}: {message}")
    if len(summary.problems) > max_problems:
        command.stderr.write(f"… and {len(summary.problems) - max_problems} more problems")
    for line in summary.lines():
        style = command.style.WARNING if summary.problems else command.style.SUCCESS
        command.stdout.write(style(f"{line} ({seconds:.1f} s)"))


class Command(BaseCommand):
    help = "Import products and their photos from a styles.csv file (Kaggle Fashion Product Images layout)."

    def add_arguments(self, parser):
        parser.add_argument("--styles", required=True, type=Path, help="styles.csv")
        parser.add_argument("--images", type=Path, help="folder of <id>.jpg photos (omit to import rows only)")
        parser.add_argument("--limit", type=int, help="import at most N rows")
        parser.add_argument("--max-problems", type=int, default=200, help="list at most N problems (default 200)")

    def handle(self, *args, styles, images, limit, max_problems, verbosity=1, **options):
        if not styles.is_file():
            raise CommandError(f"{styles}: no such file")
        if images is not None and not images.is_dir():
            raise CommandError(f"{images}: no such folder")
        if limit is not None and limit < 0:
            raise CommandError("--limit must be ≥ 0")
        total = count_lines(styles)
        if limit is not None:
            total = min(total, limit)
        started = time.monotonic()
        with tqdm(total=total, unit="row", file=sys.stderr, disable=verbosity == 0,
                  desc=f"Importing {styles.name}") as progress:
            try:
                summary = import_catalogue(styles, images, limit=limit, progress=progress)
            except BadRow as error:
                raise CommandError(str(error))
        print_summary(self, summary, time.monotonic() - started, max_problems)
