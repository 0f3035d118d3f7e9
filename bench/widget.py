"""The product page with ``{% buy_the_look product %}``: server time and SQL queries per page.

Requests go through Django's test ``Client`` (the whole request cycle: middleware, URL resolution, the
real product view and template) to each look product's page — once with the cache off (``DummyCache``:
every page computes ``look_for``) and once with it on (each page primed by one untimed request first).
When the shop has no product page yet (``catalog:product-detail`` does not resolve), the widget tag is
rendered on its own for the product (its own cost only) and the report says so.
"""
from __future__ import annotations

import re
import time
from contextlib import contextmanager

import numpy as np
from tqdm import tqdm

from .vector import explain_json, percentiles

DUMMY_CACHE = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}


def _page_getter():
    """(mode, get(product) -> (html, status)) for the product page, or the bare tag when there is none."""
    from django.template import Context, Template
    from django.test import Client
    from django.urls import NoReverseMatch

    from catalog.models import Product

    probe = Product.objects.order_by("pk").first()
    try:
        probe.get_absolute_url()
    except NoReverseMatch:
        template = Template("{% load buy_the_look %}{% buy_the_look product %}")

        def render(product_id):
            product = Product.objects.get(pk=product_id)
            return template.render(Context({"product": product})), 200

        return "widget tag only (no catalog:product-detail view in this build)", render

    client = Client()
    urls = {}

    def get(product_id):
        url = urls.get(product_id)
        if url is None:  # not timed: ``run`` resolves every page's URL before measuring
            url = urls[product_id] = Product.objects.get(pk=product_id).get_absolute_url()
        response = client.get(url)
        return response.content.decode("utf-8", "replace"), response.status_code

    def resolve(product_ids):
        urls.update((product.pk, product.get_absolute_url()) for product in Product.objects.filter(pk__in=product_ids))

    get.resolve = resolve
    return "product page (django.test.Client, full request cycle)", get


def _measure(get, product_ids, desc, progress):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, queries, statuses, with_widget = [], [], set(), 0
    for product_id in tqdm(product_ids, desc=desc, unit="page", disable=not progress, mininterval=1):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            html, status = get(product_id)
            times.append((time.perf_counter() - started) * 1000)
        queries.append(len(captured.captured_queries))
        statuses.add(status)
        with_widget += 'class="btl"' in html
    return {
        **percentiles(times),
        "pages": len(product_ids),
        "sql_queries_per_page": {"min": int(min(queries)), "median": float(np.median(queries)),
                                 "max": int(max(queries))} if queries else None,
        "http_statuses": sorted(statuses),
        "pages_with_widget": with_widget,
    }


def _look_for_only(product_ids, progress):
    """``look_for(product)`` alone (the widget's data, no template, no page): where a page's time goes."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from catalog.models import Product
    from recommender.looks import look_for

    products = {product.pk: product for product in Product.objects.filter(pk__in=product_ids)}
    times, queries, rows = [], [], []
    for product_id in tqdm(product_ids, desc="look_for", unit="product", disable=not progress, mininterval=1):
        product = products[product_id]
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            found = look_for(product)
            times.append((time.perf_counter() - started) * 1000)
        queries.append(len(captured.captured_queries))
        rows.append(len(found))
    return {**percentiles(times), "calls": len(product_ids),
            "sql_queries": {"min": int(min(queries)), "median": float(np.median(queries)), "max": int(max(queries))}
            if queries else None,
            "rows_per_look": float(np.mean(rows)) if rows else None}


def _row_products(product):
    """``{row key: [product pk, …]}`` of ``look_for(product)``: what each row of the page shows."""
    from recommender.looks import look_for

    return {row.key: [card.product.pk for card in row.recommendations] for row in look_for(product)}


def _look_statement(product):
    """The SQL of ``product``'s look statement as ``look_for`` sends it (None when it sends none)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from recommender.looks import look_for

    with CaptureQueriesContext(connection) as captured:
        look_for(product)
    return next((q["sql"] for q in captured.captured_queries if "look_hits" in q["sql"]), None)


def _statement_indexes(product):
    """The indexes the planner picks for ``product``'s look statement (``EXPLAIN``, not run)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + _look_statement(product))
        plan = "\n".join(row[0] for row in cursor.fetchall())
    return sorted(set(re.findall(r"Index (?:Only )?Scan using (\S+)", plan)))


@contextmanager
def _index_scans_off():
    """A transaction whose statements cannot use index scans: the look statement's branches scan and sort their
    whole category (exact)."""
    from django.db import connection, transaction

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")
        yield


def _candidates(on):
    """``override_settings`` turning ``LOOK_CANDIDATES`` on or off (the live search: what the lists are measured
    against, and the exact truth, which must scan every article, not read the lists)."""
    from django.conf import settings as django_settings
    from django.test.utils import override_settings

    return override_settings(BUY_THE_LOOK={**django_settings.BUY_THE_LOOK, "LOOK_CANDIDATES": on})


def _recall_point(products, exact, desc, progress):
    """``look_for`` time and the rows' recall against ``exact`` for ``products``, under the settings in force."""
    for product in products[:5]:  # untimed
        _row_products(product)
    times, recalls = [], []
    for product in tqdm(products, desc=desc, unit="look", disable=not progress, mininterval=1):
        started = time.perf_counter()
        found = _row_products(product)
        times.append((time.perf_counter() - started) * 1000)
        for key, truth in exact[product.pk].items():
            if truth:
                recalls.append(len(set(found.get(key, [])) & set(truth)) / len(truth))
    return {**percentiles(times), "rows": len(recalls),
            "row_recall": round(float(np.mean(recalls)), 4) if recalls else None,
            "rows_recall_below_half": int(sum(r < 0.5 for r in recalls))}


def row_recall(product_ids, *, sweep=(50, 100, 200), looks=50, progress=True, candidates=False):
    """What the page's rows lose to the HNSW scans: each row's products against the same look statement run
    exactly (``enable_indexscan`` off in its transaction, so every branch scans and sorts its category), for the
    first ``looks`` look products; then ``look_for``'s time and the rows' recall@k with ``LOOK_EF_SEARCH`` set to
    each value of ``sweep`` (the page's rows take ``COLOUR_CANDIDATES`` candidates and re-rank them, so their recall is
    not the vector phase's); with ``candidates``, the same with ``LOOK_CANDIDATES`` on (the lists already stored)."""
    from django.conf import settings as django_settings
    from django.test.utils import override_settings

    from catalog.models import Product
    from recommender.conf import settings

    products = list(Product.objects.filter(pk__in=list(product_ids)[:looks]).order_by("pk"))
    if not products:
        return None
    exact, curve = {}, []
    default = int(settings.EF_SEARCH if settings.LOOK_EF_SEARCH is None else settings.LOOK_EF_SEARCH)
    with _candidates(False):  # the truth and the sweep search live, along the graphs (or, for the truth, all rows)
        for product in tqdm(products, desc="look rows, exact", unit="look", disable=not progress, mininterval=1):
            with _index_scans_off():
                exact[product.pk] = _row_products(product)
        with _index_scans_off():
            exact_indexes = _statement_indexes(products[0])
        for ef in sorted({*sweep, default}):
            with override_settings(BUY_THE_LOOK={**django_settings.BUY_THE_LOOK, "LOOK_EF_SEARCH": ef}):
                curve.append({"ef_search": ef, "default": ef == default,
                              **_recall_point(products, exact, f"look rows, ef_search={ef}", progress)})
        statement_indexes = _statement_indexes(products[0])
    if candidates:
        with _candidates(True):
            curve.append({"ef_search": "precomputed candidates", "default": False,
                          **_recall_point(products, exact, "look rows, precomputed candidates", progress)})
    return {"looks": len(products), "k": settings.K, "candidates": int(settings.COLOUR_CANDIDATES),
            "statement_indexes": statement_indexes, "exact_statement_indexes": exact_indexes,
            "curve": curve}


def look_statement_times(product_ids, *, looks=30, progress=True):
    """Where ``look_for``'s time goes, for the first ``looks`` look products: its look statement (captured as
    ``look_for`` sends it) executed again through Django's cursor (wall time: planning, execution, the round trip
    and reading the rows), then ``EXPLAIN (ANALYZE, BUFFERS)`` of it (PostgreSQL's own planning and execution
    times, shared buffers hit and read). The rest of ``look_for`` is Python: building the query, the model
    instances, the cards."""
    from django.db import connection

    from catalog.models import Product

    walls, planning, execution, hits, reads = [], [], [], [], []
    products = list(Product.objects.filter(pk__in=list(product_ids)[:looks]).order_by("pk"))
    for product in tqdm(products, desc="look statement", unit="look", disable=not progress, mininterval=1):
        statement = _look_statement(product)
        if statement is None:
            continue
        with connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute(statement)
            cursor.fetchall()
            walls.append((time.perf_counter() - started) * 1000)
            plan = explain_json(cursor, statement, options="ANALYZE, BUFFERS")
        planning.append(float(plan["Planning Time"]))
        execution.append(float(plan["Execution Time"]))
        hits.append(int(plan["Plan"].get("Shared Hit Blocks", 0)))
        reads.append(int(plan["Plan"].get("Shared Read Blocks", 0)))
    if not walls:
        return None
    return {"looks": len(walls), "wall": percentiles(walls), "planning": percentiles(planning),
            "execution": percentiles(execution), "shared_hit_blocks_median": float(np.median(hits)),
            "shared_read_blocks_median": float(np.median(reads))}


def look_statement_plan(product_id):
    """The planner's view of the look statement of one product (``EXPLAIN``, not run): its estimated total
    cost next to ``jit_above_cost`` and whether PostgreSQL would JIT-compile it. A cost past that threshold
    makes every page pay for compiling the statement (tens of ms) though it runs in a few."""
    from django.db import connection

    from catalog.models import Product

    statement = _look_statement(Product.objects.get(pk=product_id))
    if statement is None:
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('jit'), current_setting('jit_above_cost')::float")
        jit, jit_above_cost = cursor.fetchone()
        plan = explain_json(cursor, statement, options="")
    return {"product": product_id, "estimated_total_cost": plan["Plan"]["Total Cost"], "jit": jit,
            "jit_above_cost": jit_above_cost, "would_jit": "JIT" in plan}


def _store_candidates(product_ids):
    """``recommender.candidates.refresh`` of the looks measured, timed: what the worker pays per look row.

    With ``CANDIDATES_MARGIN`` 0: the bench's own sessions are all it has open, and the synthetic catalogue was
    committed before the lists, as in a shop (with the default 60 s, a catalogue loaded less than a minute before
    would count as "changed since" in full and the pages would search live)."""
    from django.conf import settings as django_settings
    from django.test.utils import override_settings

    from recommender.candidates import refresh

    with override_settings(BUY_THE_LOOK={**django_settings.BUY_THE_LOOK, "CANDIDATES_MARGIN": 0}):
        done = refresh(product_ids)
    from recommender.conf import settings

    return {"rows": done.rows, "seconds": round(done.seconds, 3), "depth": int(settings.CANDIDATES_DEPTH),
            "ms_per_row": round(done.seconds * 1000 / done.rows, 2) if done.rows else None}


def run(look_product_ids, *, pages=200, warmup=10, progress=True, row_looks=50):
    from django.core.cache import cache
    from django.test.utils import override_settings

    product_ids = list(look_product_ids)[:pages]
    mode, get = _page_getter()
    result = {"mode": mode, "k": None}
    from recommender.conf import settings

    result["k"] = settings.K
    result["prepared_statements"] = bool(settings.PREPARED_STATEMENTS)
    if hasattr(get, "resolve"):
        get.resolve(product_ids)  # the pages' URLs, so that a page's figures are the page's own queries
    # the live search first (LOOK_CANDIDATES off, whatever the shop's default), then the same with the lists stored
    with override_settings(CACHES=DUMMY_CACHE), _candidates(False):
        for product_id in product_ids[:warmup]:
            get(product_id)
        result["cache_off"] = _measure(get, product_ids, "page (cache off)", progress)
        result["look_for_only"] = _look_for_only(product_ids, progress)
        result["look_statement"] = look_statement_times(product_ids, progress=progress)
        # the candidate lists a worker stores after each analysis (recommender.candidates), for every look measured
        result["candidates"] = _store_candidates(product_ids)
        if row_looks:
            result["row_recall"] = row_recall(product_ids, looks=row_looks, progress=progress, candidates=True)
        with _candidates(True):
            for product_id in product_ids[:warmup]:
                get(product_id)
            result["cache_off_candidates"] = _measure(get, product_ids, "page (cache off, candidates)", progress)
            result["look_for_only_candidates"] = _look_for_only(product_ids, progress)
            result["look_statement_candidates"] = look_statement_times(product_ids, progress=progress)
    cache.clear()
    for product_id in product_ids:  # prime: the first view of each page fills the cache
        get(product_id)
    result["cache_on"] = _measure(get, product_ids, "page (cache on)", progress)
    cache.clear()
    if product_ids:
        with _candidates(False):
            result["look_statement_plan"] = look_statement_plan(product_ids[0])
        with _candidates(True):  # the lists are stored: the statement as planned when a row reads them
            result["look_statement_plan_candidates"] = look_statement_plan(product_ids[0])
    return result
