"""The nearest-neighbour query: the k nearest recommendable products of each article vector of a look.

Two forms of the same search. ``look_hits_sql`` is the product page's: an expression the query that reads a
look's articles carries, so that the articles, their photos and the products of every article row come back
in one statement, the article vectors never leaving the database. ``search_many`` is for vectors the database
does not hold (a visitor's photo, the benchmarks) and sends the searches of all of them in one SQL statement
(one round trip): a ``UNION ALL`` of one branch per article. In both, each branch names its category as a
literal so that it uses its category's partial HNSW index. Each branch asks the partial HNSW index of its look
category for the nearest rows that pass the filter, with pgvector's iterative scan (``hnsw.iterative_scan =
relaxed_order``, set with ``set_config(..., is_local => true)`` inside the statement, so it works through
connection poolers and with psycopg 3 server-side binding), re-orders them by exact distance and folds several
images of one product into one recommendation. Only when that yields fewer than k products (a filter so
selective that the scan gave up) a second, exact query runs over the filter's B-tree index — which returns k
whenever k candidates exist. The query reads the recommender's own table only: the filter columns are copies of
the shop's facts.

Vectors are passed as query parameters adapted by ``pgvector.psycopg``'s dumpers (registered on each database
connection the first time it runs a look query): in pgvector's binary format when the connection binds
parameters server-side (``OPTIONS={"server_side_binding": True}``), as its text form with Django's default
client-side binding. No vector literal is built by hand.

Colour: when the article has a colour descriptor (``ml.colour``) and ``BUY_THE_LOOK["COLOUR_WEIGHT"]`` is above
0, each branch takes ``COLOUR_CANDIDATES`` visual candidates from the index and re-orders them by cosine distance
+ weight × colour distance (1 − the Bhattacharyya coefficient of the two colour histograms, 1 for a candidate
without colours). Each hit carries its colour similarity and main colour, for the "same colour" labels.

Precomputed candidates (``BUY_THE_LOOK["LOOK_CANDIDATES"]``, ``recommender.candidates``): in ``look_hits_sql`` a row
whose article has a usable stored list does not walk the graph: one more branch (for every category) reads the listed
articles and those of the category changed since the list by key and ranks them by exact distance, with the same
filters, weights and folding; the HNSW branches are gated off for it.

Kind: in the same way, when the article has a kind descriptor (``ml.kind_head``: what kind of article its vector
shows, a blouse, a coat, a sneaker) and ``KIND_WEIGHT`` is above 0, the candidates' score also gets weight × (1 −
the Bhattacharyya coefficient of the two kind distributions), so a street coat's row prefers jackets to the
kurtas its silhouette is near.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from pgvector import Vector

from .conf import EMBEDDING_DIM, settings
from .models import DetectedArticle, ImageAnalysis, LookCandidates

TABLE = DetectedArticle._meta.db_table
ANALYSES = ImageAnalysis._meta.db_table
CANDIDATES = LookCandidates._meta.db_table


@dataclass(frozen=True)
class SamePhotos:
    """``exclude_ids`` of a look: the product itself and every product showing one of its photos (same file
    content), found by the look query itself (one round trip less than fetching the ids first)."""

    product_id: object


def vector_parameter(cursor, embedding):
    """``embedding`` as a query parameter adapted by pgvector's psycopg dumpers (binary with server-side
    binding, its text form with Django's default client-side binding); registered once per connection."""
    from pgvector.psycopg.vector import register_vector_info
    from psycopg.types import TypeInfo

    raw_cursor = getattr(cursor, "cursor", cursor)  # Django's wrapper → the psycopg cursor
    connection = raw_cursor.connection
    info = getattr(connection, "_buy_the_look_vector_info", None)
    if info is None:
        info = TypeInfo.fetch(connection, "vector")
        register_vector_info(connection, info)  # cursors made from now on
        connection._buy_the_look_vector_info = info
    if not getattr(raw_cursor, "_buy_the_look_vector", False):
        register_vector_info(raw_cursor, info)  # this cursor (its adapters were copied when it was made)
        raw_cursor._buy_the_look_vector = True
    return Vector(np.asarray(embedding, dtype=np.float32).reshape(-1))


class Hit(NamedTuple):
    """One recommended product of an article: its distance and, when colours were compared, how alike they are."""

    product_id: object
    distance: float
    colour_similarity: float | None = None
    colour_name: str = ""


def where_clause(category, genders, filters, exclude_ids, model_version=None):
    """The WHERE clause and its parameters of a look query."""
    clauses = ["is_inventory", "is_active"]
    params = []
    if model_version:
        # vectors of different embedders are not comparable: while `manage.py reindex` catches up after
        # a model change, only vectors of the query's own model are candidates
        clauses.append("model_version = %s")
        params.append(model_version)
    if category:
        clauses.append("category = %s")
        params.append(category)
    if genders is not None:
        clauses.append("gender = ANY(%s)")
        params.append(list(genders))
    if filters.colours:
        clauses.append("base_colour = ANY(%s)")
        params.append(filters.colours)
    if filters.exclude_colours:
        clauses.append("NOT (base_colour = ANY(%s))")
        params.append(filters.exclude_colours)
    if filters.min_price is not None:
        clauses.append("price >= %s")
        params.append(filters.min_price)
    if filters.max_price is not None:
        clauses.append("price <= %s")
        params.append(filters.max_price)
    if isinstance(exclude_ids, SamePhotos):
        same_sql, same_params = same_photos_sql(exclude_ids.product_id)
        clauses.append(f"NOT (product_id = ANY({same_sql}))")
        params += same_params
    elif exclude_ids:
        clauses.append("NOT (product_id = ANY(%s))")
        params.append(sorted(exclude_ids))
    return " AND ".join(clauses), params


def index_order(vector="%s"):
    """The ORDER BY of the approximate search, the expression of the HNSW indexes it should use: the float
    vectors, or their half-precision copies (``BUY_THE_LOOK["HALFVEC"]``, indexes made by ``manage.py
    halfvec_indexes``). Candidates are re-ordered by their full-precision distance either way. ``vector``: the
    query vector's SQL (a parameter, or a column of the article searched for)."""
    if settings.HALFVEC:
        return f"(embedding::halfvec({EMBEDDING_DIM})) <=> ({vector}::halfvec({EMBEDDING_DIM}))"
    return f"embedding <=> {vector}"


def ef_search_for(limit, ef_search=None):
    """``hnsw.ef_search`` of a search fetching ``limit`` rows: ``EF_SEARCH`` (or ``ef_search``), at least the LIMIT."""
    return min(max(int(settings.EF_SEARCH if ef_search is None else ef_search), int(limit)), 1000)


def configure_search(cursor, limit):
    """Iterative HNSW scan for this transaction (``SET LOCAL`` through ``set_config``, parameter-safe), for
    ``nearest_products``; ``search_many`` sets the same inside its own statement."""
    ef_search = ef_search_for(limit)
    cursor.execute(
        "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', %s, true)",
        [str(ef_search)],
    )


def nearest_products(cursor, embedding, *, category, genders, filters, exclude_ids=(), exact=False,
                     model_version=None):
    """``[Hit(product_id, distance), …]``: the ``filters.k`` nearest inventory products, nearest first.

    Approximate (HNSW, iterative scan) unless ``exact``; call ``configure_search`` first in the same
    transaction for the approximate form. ``model_version``: only vectors of that embedder.
    """
    where, params = where_clause(category, genders, filters, exclude_ids, model_version)
    vector = vector_parameter(cursor, embedding)
    if exact:
        sql = (
            f"SELECT product_id, MIN(embedding <=> %s) AS distance FROM {TABLE} "
            f"WHERE {where} GROUP BY product_id ORDER BY distance, product_id LIMIT %s"
        )
        cursor.execute(sql, [vector, *params, filters.k])
    else:
        limit = filters.k * max(1, int(settings.OVERFETCH))
        sql = (
            f"WITH candidates AS MATERIALIZED ("
            f"SELECT product_id, embedding <=> %s AS distance FROM {TABLE} "
            f"WHERE {where} ORDER BY {index_order()} LIMIT %s) "
            f"SELECT product_id, MIN(distance) AS distance FROM candidates "
            f"GROUP BY product_id ORDER BY distance, product_id LIMIT %s"
        )
        cursor.execute(sql, [vector, *params, vector, limit, filters.k])
    return [Hit(product_id, float(distance)) for product_id, distance in cursor.fetchall()]


def search(cursor, embedding, *, category, genders, filters, exclude_ids, model_version=None, colour=None,
           ef_search=None, kind=None):
    """The search of one article: ``search_many`` with one query."""
    return search_many(cursor, [ArticleQuery(embedding, category, genders, model_version, colour, kind)],
                       filters=filters, exclude_ids=exclude_ids, ef_search=ef_search)[0]


@dataclass(frozen=True)
class ArticleQuery:
    """One article to find products for: its vector, look category, allowed genders, embedder version, colour
    descriptor (None: colour is not compared) and kind descriptor (None: kind is not compared)."""

    embedding: object
    category: str | None
    genders: tuple | None
    model_version: str | None = None
    colour: object = None
    kind: object = None


# The search settings of one statement: a materialized CTE the statement's index scans refer to
# (``search_settings.ready``), so ``set_config`` runs before them; ``is_local`` ends them with the transaction.
SEARCH_SETTINGS = ("WITH search_settings AS MATERIALIZED (SELECT set_config('hnsw.iterative_scan', 'relaxed_order', "
                   "true) IS NOT NULL AND set_config('hnsw.ef_search', %s, true) IS NOT NULL AS ready) ")


def category_vote(cursor, embedding, *, genders, filters, model_version=None, neighbours=10):
    """The look category most common among the ``neighbours`` inventory articles nearest to ``embedding``
    (any category; ties go to the nearer article), or None when the shop has none: what a photo with no
    detected article most likely shows (a close-up of one shoe, one bag)."""
    where, params = where_clause(None, genders, filters, (), model_version)
    vector = vector_parameter(cursor, embedding)
    cursor.execute(
        SEARCH_SETTINGS + f"SELECT category FROM (SELECT category, embedding <=> %s AS distance FROM search_settings "
        f"CROSS JOIN LATERAL (SELECT category, embedding FROM {TABLE} WHERE search_settings.ready AND {where} "
        f"ORDER BY {index_order()} LIMIT %s) AS nearest) AS votes "
        f"GROUP BY category ORDER BY count(*) DESC, min(distance) LIMIT 1",
        [str(ef_search_for(neighbours)), vector, *params, vector, int(neighbours)],
    )
    row = cursor.fetchone()
    return row[0] if row else None


def _search_branch(*, vector, colour_sql, colour_weight, where, head="", kind_sql="NULL::float8", kind_weight="0",
                   order=None, source=f"{TABLE} AS candidate", candidates="%s", k="%s"):
    """One article's search as a ``UNION ALL`` branch: the ``LIMIT %s`` nearest candidates along the HNSW index,
    scored ``distance + colour_weight × (1 − colour similarity) + kind_weight × (1 − kind similarity)``, the
    best-scored row of each product (several photos of one product fold into one card), the ``LIMIT %s`` best
    products. ``vector``, ``colour_sql``, ``colour_weight``, ``kind_sql``, ``kind_weight``: SQL expressions (their
    parameters in the order they appear: the two weights, the vector, colour, kind, ``where``); ``where``: the
    candidates' condition; ``head``: columns before ``product_id`` in the result; ``order``: the candidates' ORDER BY
    (default: the HNSW index's); ``source``: the FROM of the candidates (named ``candidate``). Its last two parameters
    are the number of candidates and k (unless ``candidates`` and ``k`` give them as SQL)."""
    return (f"(SELECT * FROM (SELECT DISTINCT ON (product_id) {head}product_id, distance, colour_similarity, "
            f"colour_name, distance + {colour_weight} * (1 - COALESCE(colour_similarity, 1)) "
            f"+ {kind_weight} * (1 - COALESCE(kind_similarity, 1)) AS score FROM ("
            f"SELECT product_id, embedding <=> {vector} AS distance, {colour_sql} AS colour_similarity, colour_name, "
            f"{kind_sql} AS kind_similarity "
            f"FROM {source} WHERE {where} ORDER BY {order or index_order(vector)} LIMIT {candidates}) AS candidates "
            f"ORDER BY product_id, score) AS products ORDER BY score, product_id LIMIT {k})")


def search_many(cursor, queries, *, filters, exclude_ids=(), ef_search=None):
    """``[[Hit, …] per query]``: the approximate searches of all ``queries`` in one SQL
    statement, then an exact search for each article whose approximate search found fewer than k (a filter
    so selective that the iterative scan stopped early).

    The statement sets its own search settings (iterative scan, ``hnsw.ef_search``: ``ef_search`` or
    ``EF_SEARCH``) with ``set_config(..., is_local => true)`` in a materialized CTE that every branch refers to,
    so they are in force before any index scan starts and end with the statement's transaction: one round trip,
    no separate SET, no transaction of its own (and it works through transaction-mode connection poolers)."""
    queries = list(queries)
    if not queries:
        return []
    limit = filters.k * max(1, int(settings.OVERFETCH))
    weight = max(0.0, float(settings.COLOUR_WEIGHT))
    kind_weight = max(0.0, float(settings.KIND_WEIGHT))
    branches, params = [], []
    for index, query in enumerate(queries):
        where, where_params = where_clause(query.category, query.genders, filters, exclude_ids, query.model_version)
        vector = vector_parameter(cursor, query.embedding)
        candidates = limit
        if query.colour is not None:
            colour_sql, colour_params = "COALESCE(1 - (colour <=> %s), 0)", [vector_parameter(cursor, query.colour)]
            candidates = max(limit, int(settings.COLOUR_CANDIDATES)) if weight > 0 else limit
        else:
            colour_sql, colour_params = "NULL::float8", []
        if query.kind is not None and kind_weight > 0:
            kind_sql, kind_params = "COALESCE(1 - (kind <=> %s), 0)", [vector_parameter(cursor, query.kind)]
            candidates = max(candidates, int(settings.COLOUR_CANDIDATES))
        else:
            kind_sql, kind_params = "NULL::float8", []
        branches.append(_search_branch(vector="%s", colour_sql=colour_sql, colour_weight="%s", kind_sql=kind_sql,
                                       kind_weight="%s", where=f"search_settings.ready AND {where}",
                                       head=f"{index} AS article, "))
        row_weight = weight if query.colour is not None else 0.0
        row_kind_weight = kind_weight if kind_params else 0.0
        params += [row_weight, row_kind_weight, vector, *colour_params, *kind_params, *where_params, vector,
                   candidates, filters.k]
    cursor.execute(SEARCH_SETTINGS + f"SELECT article, product_id, distance, colour_similarity, colour_name "
                   f"FROM search_settings CROSS JOIN LATERAL ({' UNION ALL '.join(branches)}) AS hits "
                   f"ORDER BY article, score, product_id",
                   [str(ef_search_for(max(limit, int(settings.COLOUR_CANDIDATES)), ef_search)), *params])
    found = [[] for _ in queries]
    for index, product_id, distance, colour_similarity, colour_name in cursor.fetchall():
        found[index].append(Hit(product_id, float(distance),
                                None if colour_similarity is None else float(colour_similarity), colour_name or ""))
    for index, query in enumerate(queries):
        if len(found[index]) < filters.k:
            found[index] = nearest_products(
                cursor, query.embedding, category=query.category, genders=query.genders, filters=filters,
                exclude_ids=exclude_ids, exact=True, model_version=query.model_version,
            )
    return found


def sql_literal(value):
    """``value`` (a setting: bool, whole number, finite float, string or list of strings) as an SQL literal.

    The look statement carries what decides its plan as literals, not parameters (``recommender.prepared``: a
    prepared statement's generic plan must still see each branch's category, to use its partial HNSW index, and
    its LIMITs, to cost the branch as the short index scan it is)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if not np.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        return f"{value!r}::float8"
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("a string with a NUL character")
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (list, tuple)):
        return "ARRAY[" + ", ".join(sql_literal(str(item)) for item in value) + "]::varchar[]"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def same_photos_sql(product_id):
    """``(sql, params)``: the array of the ids of ``product_id`` and of every product showing one of its photos."""
    return (f"ARRAY(SELECT %s UNION SELECT same.product_id FROM {ANALYSES} AS same WHERE same.product_id IS NOT NULL "
            f"AND same.sha256 IN (SELECT own.sha256 FROM {ANALYSES} AS own WHERE own.product_id = %s "
            f"AND own.sha256 <> ''))", [product_id, product_id])


def look_hits_sql(filters, product_id, *, article=TABLE):
    """``(sql, params)`` of a scalar expression over an article row of the look (``article``: the outer query's
    name of the ``DetectedArticle`` table) that is the JSON array ``[searched_live, hits]`` — whether the row was
    searched along the HNSW graph (no usable precomputed candidates) and its hits ``[[product_id, distance,
    colour_similarity, colour_name], …]``, best first — for the best article of its photo and category (the one
    ``recommender.looks.rows_for`` makes the row of), NULL for the others. ``product_id``: the look's product,
    excluded with every product showing one of its photos (``SamePhotos``).

    It lets the query that reads a look's articles find their products in the same statement: per look category
    one ``UNION ALL`` branch gated by the article's category (so each uses its category's partial HNSW index, the
    others do not run), the article's own vector, colour, gender and embedder version read from its row (no vector
    travels to or from the database), the search settings set inside (as in ``search_many``). The filters, the
    scoring and folding of several photos of a product are those of ``search_many``; an article whose search
    found fewer than k gets its exact search afterwards (``nearest_products``)."""
    limit = filters.k * max(1, int(settings.OVERFETCH))
    weight = max(0.0, float(settings.COLOUR_WEIGHT))
    kind_weight = max(0.0, float(settings.KIND_WEIGHT))
    candidates = row_candidates(filters)
    row = f'"{article}"'
    # What every branch needs, computed once per article in the statement's first CTE (so planned once, not once
    # per branch): the search settings, the products showing the look's photos, the product genders the
    # article's gender may be matched with (GENDER_POLICY; no gender: any) and the weight of colour (none for an
    # article without colours). The number of candidates is a constant (COLOUR_CANDIDATES when colour counts,
    # for an article without colours too): a LIMIT the planner cannot read makes it cost the branch as a sort of
    # the whole category, and a cost that high turns on JIT compilation, which takes longer than the search.
    policy = [(gender, list(settings.compatible_genders(gender))) for gender in sorted(settings.GENDER_POLICY)]
    ef_search = ef_search_for(max(limit, int(settings.COLOUR_CANDIDATES)), settings.LOOK_EF_SEARCH)
    excluded_sql, excluded_params = same_photos_sql(product_id)
    # Precomputed candidates (recommender.candidates): the article's list when it was computed for the article as
    # it is and its category has not changed too much since; NULL otherwise (and always with colour or price
    # filters, or when a row needs more candidates than a list holds): the row is searched live.
    if uses_candidates(filters, candidates):
        candidate_sql = (
            f"(SELECT listed.ids FROM {CANDIDATES} AS listed WHERE listed.article_id = {row}.id "
            f"AND listed.inputs = {candidate_inputs_sql(row)} AND (SELECT count(*) FROM (SELECT 1 FROM {TABLE} AS "
            f"changed WHERE changed.is_inventory AND changed.category = {row}.category "
            f"AND changed.changed_at >= listed.since LIMIT {sql_literal(int(settings.CANDIDATES_MAX_CHANGES) + 1)}) "
            f"AS changes) <= {sql_literal(int(settings.CANDIDATES_MAX_CHANGES))}) AS candidate_ids, "
            f"(SELECT listed.since FROM {CANDIDATES} AS listed WHERE listed.article_id = {row}.id) AS candidates_since")
    else:
        candidate_sql = "NULL::bigint[] AS candidate_ids, NULL::timestamptz AS candidates_since"
    search = (
        "WITH search AS MATERIALIZED (SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true) IS NOT NULL "
        f"AND set_config('hnsw.ef_search', {sql_literal(str(ef_search))}, true) IS NOT NULL AS ready, "
        f"{excluded_sql} AS excluded, CASE WHEN {row}.gender = '' THEN NULL ELSE CASE {row}.gender "
        + "".join(f"WHEN {sql_literal(gender)} THEN {sql_literal(genders)} " for gender, genders in policy)
        + f"ELSE ARRAY[{row}.gender]::varchar[] END END AS genders, "
        f"CASE WHEN {row}.colour IS NULL THEN 0 ELSE {sql_literal(weight)} END AS colour_weight, "
        f"CASE WHEN {row}.kind IS NULL THEN 0 ELSE {sql_literal(kind_weight)} END AS kind_weight, {candidate_sql}) "
    )
    search_params = list(excluded_params)
    colour_sql = f"CASE WHEN {row}.colour IS NULL THEN NULL ELSE COALESCE(1 - (colour <=> {row}.colour), 0) END"
    kind_sql = f"CASE WHEN {row}.kind IS NULL THEN NULL ELSE COALESCE(1 - (kind <=> {row}.kind), 0) END"
    branches, params = [], []
    common = (f"NOT (product_id = ANY(search.excluded)) AND (search.genders IS NULL OR gender = ANY(search.genders)) "
              f"AND ({row}.model_version = '' OR model_version = {row}.model_version)")
    for category in settings.CATEGORIES:
        where, where_params = where_clause(None, None, filters, ())
        # live: the category's HNSW index (the category a literal, so the planner picks that index)
        category_sql = sql_literal(category)
        branches.append(_search_branch(
            vector=f"{row}.embedding", colour_sql=colour_sql, colour_weight="search.colour_weight",
            kind_sql=kind_sql, kind_weight="search.kind_weight", candidates=sql_literal(candidates),
            k=sql_literal(filters.k),
            where=f"{row}.category = {category_sql} AND search.ready AND search.candidate_ids IS NULL "
                  f"AND category = {category_sql} AND {where} AND {common}"))
        params += where_params
    if uses_candidates(filters, candidates):
        # precomputed: the listed articles and those of the row's category changed since the list, each read by its
        # key (a LATERAL subquery with a LIMIT is not flattened: a nested loop over the ids, whatever the size of the
        # category), ranked by exact distance; one branch for every category (no index to choose). The changes carry
        # the LIMIT the list's check allows (more: the list is not read): without it the planner, which cannot read
        # "since", costs the branch as a third of the category read by key — at 1M articles past jit_above_cost, and
        # JIT compilation then took 1.4 s of every page.
        where, where_params = where_clause(None, None, filters, ())
        branches.append(_search_branch(
            vector=f"{row}.embedding", colour_sql=colour_sql, colour_weight="search.colour_weight",
            kind_sql=kind_sql, kind_weight="search.kind_weight", candidates=sql_literal(candidates),
            k=sql_literal(filters.k), order=f"(embedding <=> {row}.embedding)",
            source=f"(SELECT unnest(search.candidate_ids) AS id UNION (SELECT changed.id FROM {TABLE} AS changed "
                   f"WHERE changed.is_inventory AND changed.category = {row}.category "
                   f"AND changed.changed_at >= search.candidates_since "
                   f"LIMIT {sql_literal(int(settings.CANDIDATES_MAX_CHANGES))})) AS pool CROSS JOIN LATERAL "
                   f"(SELECT * FROM {TABLE} AS listed WHERE listed.id = pool.id LIMIT 1) AS candidate",
            where=f"search.candidate_ids IS NOT NULL AND category = {row}.category AND {where} AND {common}"))
        params += where_params
    # the best article of its photo and category: no other one there is more confident (ties: the lower id)
    best = (f"NOT EXISTS (SELECT 1 FROM {TABLE} AS better WHERE better.analysis_id = {row}.analysis_id "
            f"AND better.category = {row}.category AND better.confidence >= {sql_literal(float(settings.lowest_floor()))} "
            f"AND (better.confidence > "
            f"{row}.confidence OR (better.confidence = {row}.confidence AND better.id < {row}.id)))")
    sql = (f"CASE WHEN {best} THEN (" + search
           + "SELECT jsonb_build_array((SELECT candidate_ids IS NULL FROM search), "
           "COALESCE(jsonb_agg(jsonb_build_array(product_id, distance, colour_similarity, colour_name) "
           f"ORDER BY score, product_id), '[]'::jsonb)) FROM search CROSS JOIN LATERAL "
           f"({' UNION ALL '.join(branches)}) AS hits) END")
    # (a better article of the same category is above that category's floor whenever the row's article is)
    return sql, [*search_params, *params]


def row_candidates(filters):
    """How many candidates a look row takes from its category's graph before re-ranking them."""
    limit = filters.k * max(1, int(settings.OVERFETCH))
    reranked = float(settings.COLOUR_WEIGHT) > 0 or float(settings.KIND_WEIGHT) > 0
    return max(limit, int(settings.COLOUR_CANDIDATES)) if reranked else limit


def uses_candidates(filters, candidates=None):
    """Whether look rows with these filters may use precomputed candidates: ``LOOK_CANDIDATES`` on, no colour or
    price filter (the lists are made without them) and lists at least as long as the rows' candidates."""
    candidates = row_candidates(filters) if candidates is None else candidates
    return bool(settings.LOOK_CANDIDATES and not filters.colours and not filters.exclude_colours
                and filters.min_price is None and filters.max_price is None
                and int(settings.CANDIDATES_DEPTH) >= candidates)


def candidate_inputs_sql(row):
    """SQL of what an article's candidate list depends on (``LookCandidates.inputs``), ``row`` naming the article."""
    return f"({row}.category || '|' || {row}.gender || '|' || {row}.model_version)"
