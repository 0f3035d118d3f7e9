"""Vector search: the recommender's per-article query against FAISS flat and numpy brute force.

The pgvector side goes through ``recommender.queries`` exactly as ``look_for`` does for each article of
a look: ``search`` (``search_many``: one statement that sets its own search settings, the HNSW index with
pgvector's iterative scan, and the exact fallback when fewer than k products came back). The
``hnsw.ef_search`` sweep passes its value as ``search``'s ``ef_search`` (never under the statement's LIMIT).

Ground truth is exact search with the same filters, in numpy over the same rows (cross-checked against
``nearest_products(..., exact=True)`` — the same SQL without the HNSW index — on a subset of the queries).
"""
from __future__ import annotations

import json
import re
import time
from contextlib import contextmanager

import numpy as np
from tqdm import tqdm

from .synthetic import CATEGORIES, COLOURS, GENDERS, RARE_COLOUR

FAISS_OVERFETCH = 10  # FAISS returns k × this per category, then the gender (and colour) filter is applied


def explain_json(cursor, sql, params=None, options="ANALYZE"):
    """PostgreSQL's plan of ``sql`` as ``EXPLAIN (options, FORMAT JSON)`` gives it: the dict of its one statement
    (``"Plan"``, ``"Planning Time"``, ``"Execution Time"`` with ANALYZE, …)."""
    cursor.execute(f"EXPLAIN ({options + ', ' if options else ''}FORMAT JSON) " + sql, params)
    plan = cursor.fetchone()[0]
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]


def percentiles(values_ms):
    if not len(values_ms):
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None}
    values = np.asarray(values_ms, dtype=np.float64)
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p95_ms": round(float(np.percentile(values, 95)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "mean_ms": round(float(values.mean()), 3),
    }


def allowed_genders(query_gender):
    """Gender codes an article of ``query_gender`` may be matched with (the recommender's policy)."""
    from recommender.conf import settings

    names = settings.compatible_genders(GENDERS[query_gender])
    return np.array([GENDERS.index(name) for name in names if name in GENDERS], dtype=np.uint8)


class Exact:
    """Per-category matrices of the inventory, for numpy brute force and the ground truth."""

    def __init__(self, inventory):
        self.rows = {}
        for index in range(len(CATEGORIES)):
            rows = np.flatnonzero(inventory.category == index)
            self.rows[index] = (rows, np.ascontiguousarray(inventory.vectors[rows]), inventory.gender[rows],
                                inventory.colour[rows])

    def search(self, vector, category, genders, k, colour=None):
        """Product ids (row + 1) of the k nearest rows passing the filters, nearest first; and how many pass."""
        rows, matrix, gender, colours = self.rows[int(category)]
        scores = matrix @ vector
        mask = np.isin(gender, genders)
        if colour is not None:
            mask &= colours == colour
        scores = np.where(mask, scores, -np.inf)
        passing = int(mask.sum())
        take = min(k, passing)
        if take == 0:
            return [], passing
        top = np.argpartition(-scores, take - 1)[:take]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [int(rows[i]) + 1 for i in top], passing


class FlatFaiss:
    """FAISS ``IndexFlatIP`` per category (the original approach), filters applied after over-fetching."""

    def __init__(self, inventory):
        import faiss

        self.faiss = faiss
        self.indexes = {}
        started = time.perf_counter()
        for index in range(len(CATEGORIES)):
            rows = np.flatnonzero(inventory.category == index)
            built = self.make_index(inventory.dim)
            built.add(np.ascontiguousarray(inventory.vectors[rows]))
            self.indexes[index] = (built, rows, inventory.gender[rows], inventory.colour[rows])
        self.build_seconds = time.perf_counter() - started

    def make_index(self, dim):
        return self.faiss.IndexFlatIP(dim)

    def search(self, vector, category, genders, k, colour=None, fetch=None):
        built, rows, gender, colours = self.indexes[int(category)]
        _, found = built.search(vector.reshape(1, -1), min(fetch or k * FAISS_OVERFETCH, built.ntotal))
        found = found[0]
        found = found[found >= 0]
        keep = np.isin(gender[found], genders)
        if colour is not None:
            keep &= colours[found] == colour
        return [int(rows[i]) + 1 for i in found[keep][:k]]


class HnswFaiss(FlatFaiss):
    """FAISS ``IndexHNSWFlat`` per category — the in-process peer a shop would deploy instead of pgvector: the
    same M and construction effort as the recommender's index, inner product on unit vectors (= cosine),
    the gender filter applied after over-fetching, ``efSearch`` swept to compare at equal recall."""

    def __init__(self, inventory, m, ef_construction):
        self.m, self.ef_construction = m, ef_construction
        super().__init__(inventory)

    def make_index(self, dim):
        graph = self.faiss.IndexHNSWFlat(dim, self.m, self.faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = self.ef_construction
        return graph

    def search(self, vector, category, genders, k, ef_search, colour=None):
        # The graph search keeps ef_search candidates; all of them are handed to the gender filter (a fixed
        # k × FAISS_OVERFETCH would cap the peer's recall whatever its efSearch, as pgvector's iterative scan is not).
        ef = max(int(ef_search), k * FAISS_OVERFETCH)
        self.indexes[int(category)][0].hnsw.efSearch = ef
        return super().search(vector, category, genders, k, colour=colour, fetch=ef)


#: FAISS HNSW efSearch values swept (the over-fetch makes the smallest effective value k × FAISS_OVERFETCH).
FAISS_EF_SWEEP = (16, 32, 64, 128, 256, 512, 1024, 2048)


@contextmanager
def count_exact_fallbacks(counter):
    """Count the exact-fallback queries ``recommender.queries.search`` issues (wraps, changes nothing)."""
    from recommender import queries

    original = queries.nearest_products

    def counting(*args, **kwargs):
        if kwargs.get("exact"):
            counter["exact"] += 1
        return original(*args, **kwargs)

    queries.nearest_products = counting
    try:
        yield counter
    finally:
        queries.nearest_products = original


class RecommenderQuery:
    """The recommender's own per-article query, as ``look_for`` runs it."""

    def __init__(self, exclude_ids):
        from recommender import filters, queries
        from recommender.conf import settings

        self.filter_module = filters
        self.queries = queries
        self.settings = settings
        self.exclude_ids = list(exclude_ids) or [0]

    def filters(self, k, colour=None):
        return self.filter_module.Filters.build(k=k, colours=[COLOURS[colour]] if colour is not None else None)

    def search(self, vector, category, gender, filters, *, ef_search=None, number=0, exact=False):
        """(product ids, milliseconds) of one query; ``ef_search`` overrides ``hnsw.ef_search``."""
        from django.db import connection

        genders = self.settings.compatible_genders(GENDERS[gender])
        excluded = {self.exclude_ids[number % len(self.exclude_ids)]}
        with connection.cursor() as cursor:  # as look_for: one statement that sets its own search settings
            started = time.perf_counter()
            if exact:
                hits = self.queries.nearest_products(
                    cursor, vector, category=CATEGORIES[category], genders=genders, filters=filters,
                    exclude_ids=excluded, exact=True)
            else:
                hits = self.queries.search(
                    cursor, vector, category=CATEGORIES[category], genders=genders, filters=filters,
                    exclude_ids=excluded, ef_search=ef_search)
            elapsed = (time.perf_counter() - started) * 1000
        return [hit[0] for hit in hits], elapsed

    def _sent_query(self, vector, category, gender, filters, number=0):
        """(sql, params) of the approximate nearest-neighbour query ``search`` sends, or None."""
        from django.db import connection

        captured = []

        def capture(execute, sql, params, many, context):
            if re.search(r"ORDER BY \(?embedding", sql) and not sql.lstrip().upper().startswith("EXPLAIN"):
                captured.append((sql, params))
            return execute(sql, params, many, context)

        with connection.execute_wrapper(capture):
            self.search(vector, category, gender, filters, number=number)
        return captured[0] if captured else None

    def plan(self, vector, category, gender, filters):
        """EXPLAIN of the approximate query ``_search`` sends (captured, not rebuilt)."""
        from django.db import connection, transaction

        captured = self._sent_query(vector, category, gender, filters)
        if captured is None:
            return {"uses_hnsw_index": None, "hnsw_index": None, "plan": []}
        sql, params = captured
        with transaction.atomic(), connection.cursor() as cursor:
            self.queries.configure_search(cursor, filters.k * self.settings.OVERFETCH)
            cursor.execute("EXPLAIN " + sql, params)
            lines = [re.sub(r"'\[[-0-9.e,]+\]'", "'[…]'", row[0]) for row in cursor.fetchall()]
        used = [match.group(1) or match.group(2) for line in lines
                for match in [re.search(r"Index (?:Only )?Scan using (\S+)|Bitmap Index Scan on (\S+)", line)] if match]
        hnsw = [name for name in used if name in self.hnsw_indexes()]
        return {"uses_hnsw_index": bool(hnsw), "hnsw_index": hnsw[0] if hnsw else None, "indexes_used": used,
                "plan": lines}

    def server_times(self, vector, category, gender, filters, number=0):
        """(planning ms, execution ms) PostgreSQL reports for the approximate query ``_search`` sends."""
        from django.db import connection, transaction

        captured = self._sent_query(vector, category, gender, filters, number=number)
        if captured is None:
            return None
        sql, params = captured
        with transaction.atomic(), connection.cursor() as cursor:
            self.queries.configure_search(cursor, filters.k * self.settings.OVERFETCH)
            plan = explain_json(cursor, sql, params)
        return float(plan["Planning Time"]), float(plan["Execution Time"])

    def hnsw_indexes(self):
        from django.db import connection

        from recommender.models import DetectedArticle

        with connection.cursor() as cursor:
            cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef ILIKE %s",
                           [DetectedArticle._meta.db_table, "%USING hnsw%"])
            return {row[0] for row in cursor.fetchall()}


def recall(found, truth, k):
    expected = truth[:k]
    if not expected:
        return 1.0
    return len(set(found[:k]) & set(expected)) / len(expected)


def index_sizes(pattern):
    """{index name: MB} of the article table's indexes whose name matches the SQL LIKE ``pattern``."""
    from django.db import connection

    from recommender.models import DetectedArticle

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, pg_relation_size(indexname::regclass) FROM pg_indexes "
                       "WHERE tablename = %s AND indexname LIKE %s ORDER BY indexname",
                       [DetectedArticle._meta.db_table, pattern])
        return {name: round(size / 2**20, 1) for name, size in cursor.fetchall()}


def halfvec_pass(recommender, measure, sweep, maintenance_work_mem_mb, plan_query):
    """``BUY_THE_LOOK["HALFVEC"]``: build the half-precision indexes with ``manage.py halfvec_indexes``, run
    the same queries through the recommender with the setting on, then drop them again (``--restore``)."""
    import io

    from django.core.management import call_command

    from recommender.conf import settings

    started = time.perf_counter()
    call_command("halfvec_indexes", maintenance_work_mem=f"{int(maintenance_work_mem_mb)}MB", stdout=io.StringIO())
    build = time.perf_counter() - started
    sizes, float_sizes = index_sizes("recommender_%halfvec%"), index_sizes("recommender_%hnsw%")
    previous = settings.HALFVEC
    settings.HALFVEC = True
    try:
        default, _ = measure("halfvec")
        curve = [{"ef_search": ef, **measure(f"halfvec ef_search={ef}", ef_search=ef)[0]} for ef in sweep]
        plan = recommender.plan(*plan_query)
    finally:
        settings.HALFVEC = previous
        call_command("halfvec_indexes", restore=True, stdout=io.StringIO())
    return {"build_seconds": round(build, 2), "indexes": sizes, "size_mb": round(sum(sizes.values()), 1),
            "float_size_mb": round(sum(float_sizes.values()), 1), "uses_index": plan.get("hnsw_index"),
            "indexes_used": plan.get("indexes_used"), **default, "ef_search_sweep": curve,
            "what": "manage.py halfvec_indexes, BUY_THE_LOOK['HALFVEC'] on: the HNSW scan over half-precision "
                    "copies, candidates re-ordered by full-precision distance"}


def run(inventory, queries, *, exclude_ids, k=10, sweep=(20, 40, 80, 160), exact_checks=100, warmup=50,
        progress=True, halfvec=True, maintenance_work_mem_mb=1024, index_params=None):
    """The vector-search section of the report (a dict). ``index_params``: the HNSW build parameters the
    database's indexes were built with (default: the migrations'), which the FAISS HNSW peer copies."""
    from recommender.conf import settings
    from recommender.models import HNSW_EF_CONSTRUCTION, HNSW_M

    q = len(queries.category)
    exact = Exact(inventory)
    recommender = RecommenderQuery(exclude_ids)
    filters = recommender.filters(k)
    genders = [allowed_genders(g) for g in queries.gender]
    rare = COLOURS.index(RARE_COLOUR)

    # Ground truth, and numpy brute force timed on the way; then FAISS flat. Both on one thread.
    truth, truth_rare, passing_rare, numpy_ms = [], [], [], []
    faiss_ms, faiss_recall, faiss_short, faiss_rare_short = [], [], 0, 0
    with one_thread():
        for i in tqdm(range(q), desc="numpy exact", unit="query", disable=not progress, mininterval=1):
            started = time.perf_counter()
            ids, _ = exact.search(queries.vectors[i], queries.category[i], genders[i], k)
            numpy_ms.append((time.perf_counter() - started) * 1000)
            truth.append(ids)
            ids, passing = exact.search(queries.vectors[i], queries.category[i], genders[i], k, colour=rare)
            truth_rare.append(ids)
            passing_rare.append(passing)

        flat = FlatFaiss(inventory)
        for i in tqdm(range(q), desc="faiss flat", unit="query", disable=not progress, mininterval=1):
            started = time.perf_counter()
            ids = flat.search(queries.vectors[i], queries.category[i], genders[i], k)
            faiss_ms.append((time.perf_counter() - started) * 1000)
            faiss_recall.append(recall(ids, truth[i], k))
            faiss_short += len(ids) < min(k, len(truth[i]))
            rare_ids = flat.search(queries.vectors[i], queries.category[i], genders[i], k, colour=rare)
            faiss_rare_short += len(rare_ids) < min(k, passing_rare[i])

        # The in-process HNSW peer: same M / ef_construction as the recommender's index, efSearch swept.
        params = {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, **(index_params or {})}
        hnsw = HnswFaiss(inventory, m=params["m"], ef_construction=params["ef_construction"])
        hnsw_curve = []
        for ef in FAISS_EF_SWEEP:
            times, recalls = [], []
            for i in tqdm(range(q), desc=f"faiss hnsw ef={ef}", unit="query", disable=not progress, mininterval=1):
                started = time.perf_counter()
                ids = hnsw.search(queries.vectors[i], queries.category[i], genders[i], k, ef)
                times.append((time.perf_counter() - started) * 1000)
                recalls.append(recall(ids, truth[i], k))
            hnsw_curve.append({"ef_search": ef, **percentiles(times),
                               f"recall_at_{k}": round(float(np.mean(recalls)), 4),
                               "queries_recall_below_half": int(sum(r < 0.5 for r in recalls))})

    # Warm the server's caches with queries that are not timed.
    for i in range(min(warmup, q)):
        recommender.search(queries.vectors[i], queries.category[i], queries.gender[i], filters, number=i)

    def measure(desc, ef_search=None, colour=None, expected=truth):
        counter = {"exact": 0}
        chosen = recommender.filters(k, colour)
        times, recalls, short = [], [], 0
        with count_exact_fallbacks(counter):
            for i in tqdm(range(q), desc=desc, unit="query", disable=not progress, mininterval=1):
                ids, ms = recommender.search(queries.vectors[i], queries.category[i], queries.gender[i], chosen,
                                             ef_search=ef_search, number=i)
                times.append(ms)
                recalls.append(recall(ids, expected[i], k))
                short += len(ids) < min(k, len(expected[i]))
        return {**percentiles(times), f"recall_at_{k}": round(float(np.mean(recalls)), 4),
                f"min_recall_at_{k}": round(float(np.min(recalls)), 4) if recalls else None,
                "queries_recall_below_half": int(sum(r < 0.5 for r in recalls)),
                "worst_queries": [int(i) for i in np.argsort(recalls, kind="stable")[:5] if recalls[i] < 1.0],
                "short_results": short, "exact_fallbacks": counter["exact"]}, times

    default, default_times = measure("pgvector hnsw")
    curve = []
    for ef in sweep:
        point, _ = measure(f"ef_search={ef}", ef_search=ef)
        curve.append({"ef_search": ef, **point})
    rare_result, _ = measure(f"colour={RARE_COLOUR}", colour=rare, expected=truth_rare)
    half = halfvec_pass(recommender, measure, sweep, maintenance_work_mem_mb,
                        (queries.vectors[0], queries.category[0], queries.gender[0], filters)) if halfvec else None

    # Cross-check: the same SQL without the HNSW index agrees with numpy.
    checks = min(exact_checks, q)
    exact_sql_ms, exact_sql_recall = [], []
    for i in tqdm(range(checks), desc="exact sql", unit="query", disable=not progress, mininterval=1):
        ids, ms = recommender.search(queries.vectors[i], queries.category[i], queries.gender[i], filters,
                                     number=i, exact=True)
        exact_sql_ms.append(ms)
        exact_sql_recall.append(recall(ids, truth[i], k))

    plan = recommender.plan(queries.vectors[0], queries.category[0], queries.gender[0], filters)
    planning, execution = [], []
    for i in range(min(exact_checks, q)):
        times = recommender.server_times(queries.vectors[i], queries.category[i], queries.gender[i], filters, i)
        if times:
            planning.append(times[0])
            execution.append(times[1])
    rare_plan = recommender.plan(queries.vectors[0], queries.category[0], queries.gender[0],
                                 recommender.filters(k, rare))
    pg_p95 = default["p95_ms"]
    faiss_stats = percentiles(faiss_ms)
    numpy_stats = percentiles(numpy_ms)
    rare_share = float(np.mean(inventory.colour == rare))
    return {
        "k": k,
        "queries": q,
        "query_filter": "category + gender (the recommender's gender policy: Men→Men|Unisex, Women→Women|Unisex)",
        "ef_search_default": int(max(settings.EF_SEARCH, k * settings.OVERFETCH)),
        "overfetch": settings.OVERFETCH,
        "pgvector": {**default, "path": "recommender.queries.search (look_for's per-article statement)",
                     "uses_hnsw_index": plan["uses_hnsw_index"], "hnsw_index": plan["hnsw_index"],
                     "indexes_used": plan.get("indexes_used"), "plan": plan["plan"]},
        "server_side": {"queries": len(execution), "execution": percentiles(execution),
                        "planning": percentiles(planning),
                        "what": "EXPLAIN ANALYZE of the approximate query: PostgreSQL's own planning and "
                                "execution time, without the client, the network and Django"},
        "ef_search_sweep": curve,
        "exact_sql": {**percentiles(exact_sql_ms), "queries": checks,
                      f"agreement_with_numpy_at_{k}": round(float(np.mean(exact_sql_recall)), 4) if checks else None},
        "faiss_flat": {**faiss_stats, f"recall_at_{k}": round(float(np.mean(faiss_recall)), 4),
                       "short_results": faiss_short, "rare_colour_short_results": faiss_rare_short,
                       "overfetch": FAISS_OVERFETCH, "build_seconds": round(flat.build_seconds, 2)},
        "numpy_brute_force": {**numpy_stats, f"recall_at_{k}": 1.0},
        "faiss_hnsw": {"m": hnsw.m, "ef_construction": hnsw.ef_construction, "overfetch": FAISS_OVERFETCH,
                       "build_seconds": round(hnsw.build_seconds, 2), "ef_search_sweep": hnsw_curve,
                       "what": "FAISS IndexHNSWFlat per category, in process, one thread; gender filter after "
                               "over-fetching"},
        "threads": "FAISS and numpy timed on one thread each (one PostgreSQL backend answers one query on one core)",
        "speedup_p95_vs_faiss_flat": round(faiss_stats["p95_ms"] / pg_p95, 2) if pg_p95 else None,
        "speedup_p50_vs_faiss_flat": (round(faiss_stats["p50_ms"] / default["p50_ms"], 2)
                                      if default["p50_ms"] else None),
        "speedup_p95_vs_numpy": round(numpy_stats["p95_ms"] / pg_p95, 2) if pg_p95 else None,
        "halfvec": half,
        "rare_colour": {
            "colour": RARE_COLOUR,
            "share_of_articles": round(rare_share, 4),
            "selectivity_with_category_and_gender": round(float(np.mean(passing_rare)) / inventory.n, 5),
            "queries_with_fewer_than_k_matches": int(sum(p < k for p in passing_rare)),
            **rare_result,
            "uses_hnsw_index": rare_plan["uses_hnsw_index"],
            "indexes_used": rare_plan.get("indexes_used"),
            "plan": rare_plan["plan"],
        },
    }


@contextmanager
def one_thread():
    """FAISS and numpy's OpenBLAS on one thread while timing, as PostgreSQL runs one query on one core.

    (Their thread pools also spin badly when other work shares the CPUs.) Restores the previous counts.
    """
    import ctypes

    restore = []
    try:
        import faiss

        previous = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        restore.append(lambda: faiss.omp_set_num_threads(previous))
    except ImportError:
        pass
    for library in _openblas_libraries():
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                setter = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
                if setter is None or getter is None:
                    continue
                getter.restype = ctypes.c_int
                previous = getter()
                setter(1)
                restore.append(lambda setter=setter, previous=previous: setter(previous))
                break
            else:
                continue
            break
    try:
        yield
    finally:
        for undo in reversed(restore):
            undo()


def _openblas_libraries():
    import ctypes

    paths = set()
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if "openblas" in path.lower() and ".so" in path:
                    paths.add(path)
    except OSError:
        return []
    libraries = []
    for path in sorted(paths):
        try:
            libraries.append(ctypes.CDLL(path))
        except OSError:
            pass
    return libraries
