"""Precomputed candidates of the product page's look rows (``BUY_THE_LOOK["LOOK_CANDIDATES"]``).

A look row's products are the inventory articles nearest to the row's article (its category, a compatible gender,
the same embedder), re-ranked by colour and kind. Walking the HNSW graph for them is most of a product page's
cost in a large shop (three walks per look). A worker can do that walk ahead of time: ``refresh(product_ids)``
stores, for each look row's article, the ids of its ``CANDIDATES_DEPTH`` nearest inventory articles
(``LookCandidates``). The page then reads those articles by key, together with every inventory article of the
row's category changed since the list was made (``DetectedArticle.changed_at``: new analyses, re-activated
products, gender changes), and ranks them exactly with the live search's filters and weights
(``queries.look_hits_sql``). It shows what the live search shows:

- an article deactivated or deleted since is filtered out (it is read as it is now);
- an article added, re-activated or changed since is among "changed since" and ranked with the others;
- an article that was there before but beyond the list's depth cannot come back into the first
  ``COLOUR_CANDIDATES`` unless more than ``CANDIDATES_DEPTH − COLOUR_CANDIDATES`` listed ones left.

A list is not used (the row is searched live) when the article's category, gender or embedder is not the one it
was computed for, or when more than ``CANDIDATES_MAX_CHANGES`` inventory articles of its category changed since
(after a bulk import or a re-index: refresh the lists then).

"Changed since" must not miss a change that was being written while the list was computed: a row's
``changed_at`` is the start of the transaction that wrote it, so a list's ``since`` is the start of the oldest
transaction open when the computation began (``pg_stat_activity``), or the computation's start if none was,
minus ``CANDIDATES_MARGIN`` seconds (for sessions of other roles whose start this one cannot see). A long
transaction in the shop's database (a ``pg_dump``, an index build) thus widens "changed since" of the lists computed
while it runs; past ``CANDIDATES_MAX_CHANGES`` their rows are searched live.

Lists are refreshed after every full-shot analysis (``hooks.look_analysed``, on the bulk queue) and by
``manage.py look_candidates`` (all looks, or some products', e.g. nightly or after an import).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.db import connections, router

from .conf import settings
from .models import DetectedArticle, ImageAnalysis, LookCandidates
from .queries import CANDIDATES, SEARCH_SETTINGS, TABLE, candidate_inputs_sql, ef_search_for, index_order

logger = logging.getLogger(__name__)


@dataclass
class Refreshed:
    """What ``refresh`` did: look rows whose lists were stored and the seconds it took."""

    rows: int = 0
    seconds: float = 0.0


def _database():
    return router.db_for_write(LookCandidates)


def look_row_articles(product_ids):
    """Ids of the articles the product pages of ``product_ids`` show a row for: per analysed full shot of the
    product and look category, its most confident article at or above the category's floor (``looks.rows_for``)."""
    return [article_id for article_id, _ in _look_rows(product_ids)]


def _look_rows(product_ids):
    """``[(article id, look category)]`` of ``look_row_articles``."""
    from .looks import above_floor

    articles = (DetectedArticle.objects.using(_database())
                .filter(analysis__product_id__in=list(product_ids), analysis__status=ImageAnalysis.Status.DONE,
                        analysis__is_full_shot=True)
                .filter(above_floor()).order_by("analysis_id", "category", "-confidence", "id")
                .values_list("id", "analysis_id", "category"))
    best, seen = [], set()
    for article_id, analysis_id, category in articles:
        if (analysis_id, category) not in seen:
            seen.add((analysis_id, category))
            best.append((article_id, category))
    return best


def since_now(cursor):
    """The ``since`` of a list computed from now on: the start of the oldest other transaction open now (it may
    write rows stamped with its start that the computation cannot see), or now, minus ``CANDIDATES_MARGIN``."""
    cursor.execute(
        "SELECT LEAST(clock_timestamp(), min(xact_start) FILTER (WHERE pid <> pg_backend_pid() "
        "AND backend_type = 'client backend' AND datname = current_database())) - make_interval(secs => %s) "
        "FROM pg_stat_activity",
        [float(settings.CANDIDATES_MARGIN)])
    return cursor.fetchone()[0]


def refresh(product_ids, *, progress=None):
    """Compute and store the candidate lists of the look rows of ``product_ids``; returns ``Refreshed``.

    One statement per row (its category's HNSW index, ``EF_SEARCH`` or the depth, whichever is larger), outside
    any transaction of the caller's: each list is visible as soon as it is stored. ``progress``: called with the
    number of rows done so far."""
    started = time.perf_counter()
    done = Refreshed()
    rows = _look_rows(product_ids)
    if not rows:
        return done
    depth = int(settings.CANDIDATES_DEPTH)
    policy = [(gender, list(settings.compatible_genders(gender))) for gender in sorted(settings.GENDER_POLICY)]
    row = "look_row"
    genders = (f"CASE WHEN {row}.gender = '' THEN NULL ELSE CASE {row}.gender "
               + "".join("WHEN %s THEN %s::varchar[] " for _ in policy)
               + f"ELSE ARRAY[{row}.gender]::varchar[] END END")
    gender_params = [value for pair in policy for value in pair]
    with connections[_database()].cursor() as cursor:
        since = since_now(cursor)
        # one statement per row, its category a literal, so the search uses the category's HNSW index
        for article_id, category in rows:
            cursor.execute(
                SEARCH_SETTINGS
                + f"INSERT INTO {CANDIDATES} (article_id, ids, inputs, since, computed_at) "
                f"SELECT {row}.id, ARRAY(SELECT candidate.id FROM {TABLE} AS candidate "
                f"WHERE search_settings.ready AND candidate.is_inventory AND candidate.is_active "
                f"AND candidate.category = %s "
                f"AND ({row}.model_version = '' OR candidate.model_version = {row}.model_version) "
                f"AND ({row}.gender = '' OR candidate.gender = ANY({genders})) "
                f"ORDER BY {index_order(f'{row}.embedding')} LIMIT %s), {candidate_inputs_sql(row)}, %s, now() "
                f"FROM search_settings, {TABLE} AS {row} WHERE {row}.id = %s "
                f"ON CONFLICT (article_id) DO UPDATE SET ids = EXCLUDED.ids, inputs = EXCLUDED.inputs, "
                f"since = EXCLUDED.since, computed_at = EXCLUDED.computed_at",
                [str(ef_search_for(depth)), category, *gender_params, depth, since, article_id])
            done.rows += cursor.rowcount
            if progress:
                progress(done.rows)
    done.seconds = time.perf_counter() - started
    return done


def all_look_products():
    """Ids of the products with an analysed full shot (every product page with a look)."""
    return (ImageAnalysis.objects.using(_database())
            .filter(status=ImageAnalysis.Status.DONE, is_full_shot=True, product_id__isnull=False)
            .values_list("product_id", flat=True).distinct().order_by("product_id"))
