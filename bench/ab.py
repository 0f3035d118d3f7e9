"""The product page (cache off) with one ``BUY_THE_LOOK`` key set to each of several values, in alternating rounds
on the shop's own database (the demo's after ``make demo``): ``python -m bench.ab KEY VALUE VALUE… [--rounds N]``.

Values are JSON (``false``, ``true``, ``100``, ``null``). Every look product's page is requested through Django's test
client in each round, the values taking turns, so that the machine's drift over the run falls on all of them alike;
the per-value p50/p95/mean of all rounds are printed. Timings only: the rows themselves are the tests' business.
"""
from __future__ import annotations

import argparse
import json
import os
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("key", help="a BUY_THE_LOOK key, e.g. PREPARED_STATEMENTS")
    parser.add_argument("values", nargs="+", type=json.loads, help="JSON values to compare, e.g. false true")
    parser.add_argument("--rounds", type=int, default=8, help="rounds (every look page once per value in each)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed pages per value and round")
    parser.add_argument("--compare-rows", action="store_true",
                        help="also check that every value gives every look the same rows (for settings that must not "
                             "change them: PREPARED_STATEMENTS, LOOK_CANDIDATES), with and without filters")
    return parser.parse_args(argv)


#: the filter sets ``--compare-rows`` asks each look for: the page's, a smaller k, a colour and a price filter
ROW_FILTERS = ({}, {"k": 3}, {"colours": ["black"]}, {"max_price": 50})


def row_signature(rows):
    """What look rows show: their categories, articles and products with their distances."""
    return [(row.category, row.article.pk, [(card.pk, round(card.distance, 6)) for card in row.recommendations])
            for row in rows]


def shown_rows(product, **filters):
    """``row_signature`` of ``product``'s look."""
    from recommender.looks import look_for

    return row_signature(look_for(product, **filters))


def differing_looks(products, key, values, base):
    """How many of ``products`` show other rows for some value of ``key`` than for the first, over ``ROW_FILTERS``."""
    from django.test.utils import override_settings

    differing = 0
    for product in products:
        seen = []
        for value in values:
            with override_settings(BUY_THE_LOOK={**base, key: value}):
                seen.append([shown_rows(product, **filters) for filters in ROW_FILTERS])
        differing += any(rows != seen[0] for rows in seen[1:])
    return differing


def main(argv=None):
    args = parse_args(argv)
    import django
    from django.conf import settings

    if not settings.configured:  # a command of its own (not inside a configured process, e.g. the tests)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
        # production-like request handling, as the bench's: no DEBUG query log, no SSL redirect for the test client
        os.environ["DEBUG"] = "0"
        os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
        os.environ.setdefault("ALLOWED_HOSTS", "testserver")
        os.environ["SECURE_SSL_REDIRECT"] = "0"
        django.setup()
    from django.test import Client
    from django.test.utils import override_settings

    from catalog.models import Product
    from recommender.models import ImageAnalysis

    from .vector import percentiles
    from .widget import DUMMY_CACHE

    looks = ImageAnalysis.objects.filter(is_full_shot=True, status=ImageAnalysis.Status.DONE)
    products = list(Product.objects.filter(pk__in=looks.values("product_id")).order_by("pk"))
    urls = [product.get_absolute_url() for product in products]
    if not urls:
        raise SystemExit("no analysed look in this database (make demo first)")
    client, base = Client(), dict(getattr(settings, "BUY_THE_LOOK", {}))
    times = {json.dumps(value): [] for value in args.values}
    with override_settings(CACHES=DUMMY_CACHE):
        for _ in range(args.rounds):
            for value in args.values:
                with override_settings(BUY_THE_LOOK={**base, args.key: value}):
                    for url in urls[:args.warmup]:
                        client.get(url)
                    for url in urls:
                        started = time.perf_counter()
                        response = client.get(url)
                        times[json.dumps(value)].append((time.perf_counter() - started) * 1000)
                        if response.status_code != 200:
                            raise SystemExit(f"{url} answered {response.status_code}")
    print(f"{len(urls)} look pages × {args.rounds} rounds, cache off, {settings.DATABASES['default']['NAME']}")
    for value, measured in times.items():
        figures = percentiles(measured)
        print(f"{args.key}={value}: p50 {figures['p50_ms']:.2f} ms, p95 {figures['p95_ms']:.2f} ms, "
              f"mean {figures['mean_ms']:.2f} ms")
    if args.compare_rows:
        with override_settings(CACHES=DUMMY_CACHE):
            differing = differing_looks(products, args.key, args.values, base)
        print(f"looks whose rows differ between the values ({len(ROW_FILTERS)} filter sets each): "
              f"{differing} of {len(products)}")


if __name__ == "__main__":
    main()
