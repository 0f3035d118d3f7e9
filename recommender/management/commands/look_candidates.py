"""``manage.py look_candidates [--product PK ...]``: (re)compute the precomputed candidates of look rows.

``BUY_THE_LOOK["LOOK_CANDIDATES"]`` makes product pages rank each look row's stored candidates instead of walking
the HNSW graph (``recommender.candidates``). New full shots get their lists after their analysis; run this after
turning the setting on, after a bulk import or a re-index (too many changes since a list make its row search live
again), or nightly. Without ``--product``: every product with an analysed full shot.
"""
from django.core.management.base import BaseCommand, CommandError

from recommender.candidates import all_look_products, refresh
from recommender.conf import settings


class Command(BaseCommand):
    help = "Compute the candidate lists of look rows (every look, or the looks of --product)."

    def add_arguments(self, parser):
        parser.add_argument("--product", action="append", default=[], metavar="PK",
                            help="a product's primary key (repeat for more); default: every product with a look")
        parser.add_argument("--batch", type=int, default=200, help="products per pass (default 200)")

    def handle(self, *args, **options):
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1")
        to_pk = settings.adapter.get_product_model()._meta.pk.to_python
        try:
            products = [to_pk(value) for value in options["product"]] or list(all_look_products())
        except Exception as error:
            raise CommandError(f"--product: {error}") from None
        if not settings.LOOK_CANDIDATES:
            self.stdout.write(self.style.WARNING(
                "BUY_THE_LOOK['LOOK_CANDIDATES'] is off: the lists are stored, but pages search live until it is on"))
        rows = seconds = 0
        for start in range(0, len(products), options["batch"]):
            done = refresh(products[start:start + options["batch"]])
            rows += done.rows
            seconds += done.seconds
        per_row = f", {seconds / rows * 1000:.1f} ms per row" if rows else ""
        self.stdout.write(self.style.SUCCESS(
            f"candidate lists of {rows} look row(s) of {len(products)} product(s) in {seconds:.1f} s{per_row}"))
