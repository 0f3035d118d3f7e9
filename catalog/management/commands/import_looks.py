"""manage.py import_looks --photos DIR

Imports full-body photos (JPEG, PNG, WebP) as products of master category "Outfit": SKU ``look-<stem>``,
name "Street look <stem>", no gender (unknown), price 0 (a look is not for sale — the products recommended
for its articles are), active so that each look has its page. A second run writes nothing.
"""
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.importing import import_looks, look_photos

from .import_catalogue import print_summary


class Command(BaseCommand):
    help = "Import full-body street photos as 'Outfit' products (one product per photo)."

    def add_arguments(self, parser):
        parser.add_argument("--photos", required=True, type=Path, help="folder of photos")
        parser.add_argument("--limit", type=int, help="import at most N photos")
        parser.add_argument("--max-problems", type=int, default=200)

    def handle(self, *args, photos, limit, max_problems, verbosity=1, **options):
        if not photos.is_dir():
            raise CommandError(f"{photos}: no such folder")
        total = len(look_photos(photos))
        if limit is not None:
            total = min(total, limit)
        started = time.monotonic()
        with tqdm(total=total, unit="photo", file=sys.stderr, disable=verbosity == 0,
                  desc=f"Importing looks from {photos.name}") as progress:
            summary = import_looks(photos, limit=limit, progress=progress)
        print_summary(self, summary, time.monotonic() - started, max_problems)
