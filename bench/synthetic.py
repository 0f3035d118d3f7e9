"""Synthetic inventory: clustered article vectors with the shop's filter columns, loaded by COPY.

What the data looks like (all drawn from one seeded generator, so two runs hold the same rows):

- ``n`` inventory articles, one per product (a catalogue photo's own article), in five look categories
  (top 35%, bottom 20%, dress 10%, footwear 25%, bag 10%), genders Men 55% / Women 35% / Unisex 10%,
  thirteen colours from black (22%) down to the rare "lavender" (1%) (with an ``ml.colour``-shaped colour
  descriptor, so look queries re-rank by colour as in a real shop), an ``ml.kind_head``-shaped kind descriptor per
  style cluster (look queries re-rank by kind too), log-normal prices.
- Vectors of the embedder's dimension (``DetectedArticle.embedding``), unit length, grouped the way a
  metric-learned embedding groups products: each category has its own mean direction; around it, "style"
  clusters of about ``CLUSTER_SIZE`` products with Zipf-like sizes; inside a cluster, points spread along
  a few cluster-specific directions (low intrinsic dimension) plus small isotropic noise.
- Queries: look-photo crops — a cluster of the query's category, a new point of that cluster with more
  noise than the catalogue photos (a street photo is not a packshot), gender Men 60% / Women 40%.
- ``looks`` outfit products with a full-shot analysis and three non-inventory articles each (what the
  widget shows a row for).

``load(...)`` writes products, images, analyses and articles through ``COPY`` (psycopg 3 ``cursor.copy``,
binary for the vectors) and then rebuilds the HNSW index the migration made, timing the build.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
from tqdm import tqdm

from ml.embed import VERSION as EMBEDDER_VERSION

CATEGORIES = ("top", "bottom", "dress", "footwear", "bag")
CATEGORY_SHARE = (0.35, 0.20, 0.10, 0.25, 0.10)
SUB_CATEGORY = {"top": "Topwear", "bottom": "Bottomwear", "dress": "Dress", "footwear": "Shoes", "bag": "Bags"}
MASTER_CATEGORY = {"top": "Apparel", "bottom": "Apparel", "dress": "Apparel", "footwear": "Footwear",
                   "bag": "Accessories"}
GENDERS = ("Men", "Women", "Unisex")
GENDER_SHARE = (0.55, 0.35, 0.10)
QUERY_GENDER_SHARE = (0.60, 0.40, 0.0)
COLOURS = ("black", "white", "blue", "grey", "navy blue", "red", "brown", "green", "pink", "beige",
           "purple", "yellow", "lavender")
COLOUR_SHARE = (0.22, 0.15, 0.13, 0.10, 0.08, 0.06, 0.06, 0.05, 0.04, 0.04, 0.03, 0.03, 0.01)
RARE_COLOUR = "lavender"


def colour_descriptor(word: str, rng) -> np.ndarray:
    """An ``ml.colour``-shaped descriptor: mostly ``word``, a little of another colour word (unit length)."""
    from ml.colour import WORDS

    probabilities = np.zeros(len(WORDS), dtype=np.float32)
    probabilities[[w.lower() for w in WORDS].index(word.lower())] += 0.8
    probabilities[rng.integers(len(WORDS))] += 0.2
    descriptor = np.sqrt(probabilities)
    return descriptor / np.linalg.norm(descriptor)


def kind_descriptors(clusters: int, dim: int, rng) -> np.ndarray:
    """An ``ml.kind_head``-shaped descriptor per style cluster: mostly one article type, a little of another
    (unit rows), so look queries re-rank by kind as in a real shop."""
    probabilities = np.zeros((clusters, dim), dtype=np.float32)
    probabilities[np.arange(clusters), rng.integers(dim, size=clusters)] += 0.8
    probabilities[np.arange(clusters), rng.integers(dim, size=clusters)] += 0.2
    descriptors = np.sqrt(probabilities)
    return descriptors / np.linalg.norm(descriptors, axis=1, keepdims=True)


CLUSTER_SIZE = 200      # mean products per style cluster
LATENT_DIM = 12         # directions a cluster spreads along
CLUSTER_SPREAD = 0.45   # spread along them (relative to the unit cluster centre)
NOISE = 0.12            # isotropic noise of a catalogue photo (norm, relative)
QUERY_NOISE = 0.25      # isotropic noise of a look-photo crop
CATEGORY_PULL = 0.5     # how much of a cluster centre is its category's mean direction
ARTICLE_TABLE = "recommender_detectedarticle"
# The embedder version the synthetic vectors are stored under: the shipped embedder's, as in a shop whose catalogue
# it analysed. Rows of a look match only vectors of their own embedder, so with another version the photos the
# pipeline phase analyses for real would look for the few real vectors among the synthetic ones (the situation of
# a shop half-way through a re-index, whose iterative scans run to their limit), which is not what ingest measures.
MODEL_VERSION = EMBEDDER_VERSION


def unit_rows(matrix):
    return (matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass
class Inventory:
    """The generated rows (numpy arrays, row i = product/image/analysis/article id ``i + 1``)."""

    vectors: np.ndarray          # (n, dim) float32, unit rows
    category: np.ndarray         # (n,) uint8 index into CATEGORIES
    gender: np.ndarray           # (n,) uint8 index into GENDERS
    colour: np.ndarray           # (n,) uint8 index into COLOURS
    price: np.ndarray            # (n,) float64, two decimals
    cluster: np.ndarray          # (n,) int32
    # cluster model, to draw queries and look articles from the same distribution
    centres: np.ndarray = field(repr=False)      # (clusters, dim)
    bases: np.ndarray = field(repr=False)        # (clusters, LATENT_DIM, dim)
    cluster_category: np.ndarray = field(repr=False)  # (clusters,) uint8
    cluster_weight: np.ndarray = field(repr=False)    # (clusters,) float64, sums to 1 within a category

    @property
    def n(self):
        return len(self.category)

    @property
    def dim(self):
        return self.vectors.shape[1]


@dataclass
class Queries:
    vectors: np.ndarray   # (q, dim)
    category: np.ndarray  # (q,) uint8
    gender: np.ndarray    # (q,) uint8


def generate(n, dim, seed=20261126, progress=True):
    """``Inventory`` of ``n`` articles of dimension ``dim``."""
    rng = np.random.default_rng(seed)
    category = rng.choice(len(CATEGORIES), size=n, p=CATEGORY_SHARE).astype(np.uint8)
    gender = rng.choice(len(GENDERS), size=n, p=GENDER_SHARE).astype(np.uint8)
    colour = rng.choice(len(COLOURS), size=n, p=COLOUR_SHARE).astype(np.uint8)
    price = np.round(np.clip(rng.lognormal(mean=3.4, sigma=0.6, size=n), 3, 2000), 2)

    category_means = unit_rows(rng.standard_normal((len(CATEGORIES), dim)))
    counts = np.bincount(category, minlength=len(CATEGORIES))
    centres, bases, cluster_category, cluster_weight = [], [], [], []
    cluster = np.empty(n, dtype=np.int32)
    first = 0
    for index, count in enumerate(counts):
        clusters = max(1, int(round(count / CLUSTER_SIZE)))
        weight = 1.0 / np.arange(1, clusters + 1) ** 0.7  # Zipf-like: a few big styles, many small ones
        weight = rng.permutation(weight / weight.sum())
        own = unit_rows(CATEGORY_PULL * category_means[index]
                        + (1 - CATEGORY_PULL) * unit_rows(rng.standard_normal((clusters, dim))))
        centres.append(own)
        bases.append(rng.standard_normal((clusters, LATENT_DIM, dim)).astype(np.float32) / np.sqrt(dim))
        cluster_category.append(np.full(clusters, index, dtype=np.uint8))
        cluster_weight.append(weight)
        rows = np.flatnonzero(category == index)
        cluster[rows] = first + rng.choice(clusters, size=len(rows), p=weight)
        first += clusters
    centres = np.concatenate(centres).astype(np.float32)
    bases = np.concatenate(bases)
    cluster_category = np.concatenate(cluster_category)
    cluster_weight = np.concatenate(cluster_weight)

    vectors = np.empty((n, dim), dtype=np.float32)
    order = np.argsort(cluster, kind="stable")
    bounds = np.searchsorted(cluster[order], np.arange(len(centres) + 1))
    for c in tqdm(range(len(centres)), desc="vectors", unit="cluster", disable=not progress, mininterval=1):
        rows = order[bounds[c]:bounds[c + 1]]
        if not len(rows):
            continue
        vectors[rows] = _points(rng, centres[c], bases[c], len(rows), NOISE)
    return Inventory(vectors=vectors, category=category, gender=gender, colour=colour, price=price,
                     cluster=cluster, centres=centres, bases=bases, cluster_category=cluster_category,
                     cluster_weight=cluster_weight)


def _points(rng, centre, basis, count, noise):
    dim = centre.shape[0]
    latent = rng.standard_normal((count, basis.shape[0])).astype(np.float32) * CLUSTER_SPREAD
    isotropic = rng.standard_normal((count, dim)).astype(np.float32) * (noise / np.sqrt(dim))
    return unit_rows(centre + latent @ basis + isotropic)


def _draw(inventory, rng, count, gender_share):
    category = rng.choice(len(CATEGORIES), size=count, p=CATEGORY_SHARE).astype(np.uint8)
    gender = rng.choice(len(GENDERS), size=count, p=gender_share).astype(np.uint8)
    vectors = np.empty((count, inventory.dim), dtype=np.float32)
    for i, c in enumerate(category):
        candidates = np.flatnonzero(inventory.cluster_category == c)
        weight = inventory.cluster_weight[candidates]
        cluster = rng.choice(candidates, p=weight / weight.sum())
        vectors[i] = _points(rng, inventory.centres[cluster], inventory.bases[cluster], 1, QUERY_NOISE)[0]
    return Queries(vectors=vectors, category=category, gender=gender)


def queries(inventory, count, seed=7):
    """``count`` look-photo article queries."""
    return _draw(inventory, np.random.default_rng(seed), count, QUERY_GENDER_SHARE)


# --------------------------------------------------------------------------------------------------
# Loading


LOOK_LAYOUT = {  # category → box of a look article, by the look's gender
    "Men": (("top", (0.25, 0.15, 0.75, 0.5)), ("bottom", (0.3, 0.48, 0.7, 0.85)),
            ("footwear", (0.3, 0.86, 0.7, 0.98))),
    "Women": (("dress", (0.25, 0.15, 0.75, 0.75)), ("bag", (0.65, 0.4, 0.9, 0.6)),
              ("footwear", (0.3, 0.86, 0.7, 0.98))),
}


@dataclass
class LoadReport:
    rows: dict
    seconds: dict
    index: dict
    look_product_ids: list


def with_params(definition, params):
    """``definition`` (a CREATE INDEX … USING hnsw … WITH (…)) with its WITH options replaced by ``params``."""
    if not params:
        return definition
    options = ", ".join(f"{key}='{int(value)}'" for key, value in params.items())
    if " WITH (" in definition:
        return re.sub(r" WITH \([^)]*\)", f" WITH ({options})", definition, count=1)
    return definition.replace(" WHERE ", f" WITH ({options}) WHERE ", 1)


def load(inventory, looks, *, dbname, progress=True, seed=11, index_params=None):
    """Write ``inventory`` and ``looks`` outfit products into the (empty, migrated) bench database.

    Returns a ``LoadReport``: row counts, seconds per table, and the HNSW index rebuild (time, size).
    """
    from pgvector.psycopg import register_vector

    from . import database

    rng = np.random.default_rng(seed)
    n = inventory.n
    now = dt.datetime.now(dt.timezone.utc)
    seconds = {}
    look_ids = list(range(n + 1, n + looks + 1))
    look_genders = ["Men" if i % 2 == 0 else "Women" for i in range(looks)]

    with database.connect(dbname) as conn:
        register_vector(conn)
        with conn.cursor() as cursor:
            indexes = cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexdef ILIKE %s "
                "ORDER BY indexname", [ARTICLE_TABLE, "%USING hnsw%"]
            ).fetchall()
            if not indexes:
                raise SystemExit(f"the migrations made no HNSW index on {ARTICLE_TABLE}: nothing to benchmark")
            # The indexes are built after the load, as one would for a bulk import.
            for name, _ in indexes:
                cursor.execute(f"DROP INDEX {name}")
            indexes = [(name, with_params(definition, index_params)) for name, definition in indexes]

            started = time.perf_counter()
            with cursor.copy(
                "COPY catalog_product (id, sku, name, slug, description, gender, master_category, sub_category, "
                "article_type, base_colour, season, usage, year, price, is_active, look_category, created_at, "
                "updated_at) FROM STDIN"
            ) as copy:
                for i in tqdm(range(n), desc="products", unit="row", disable=not progress, mininterval=1,
                              unit_scale=True):
                    category = CATEGORIES[inventory.category[i]]
                    colour = COLOURS[inventory.colour[i]]
                    pk = i + 1
                    copy.write_row((
                        pk, f"B{pk}", f"{colour.title()} {category} {pk}", f"{category}-{pk}", "",
                        GENDERS[inventory.gender[i]], MASTER_CATEGORY[category], SUB_CATEGORY[category], "",
                        colour.title(), "", "", None, f"{inventory.price[i]:.2f}", True, category, now, now,
                    ))
                for pk, gender in zip(look_ids, look_genders):
                    copy.write_row((pk, f"L{pk}", f"Look {pk}", f"look-{pk}", "", gender, "Outfit", "", "", "",
                                    "", "", None, "89.00", True, "", now, now))
            seconds["products"] = time.perf_counter() - started

            started = time.perf_counter()
            with cursor.copy(
                "COPY catalog_productimage (id, file, position, is_primary, width, height, sha256, created_at, "
                "updated_at, product_id) FROM STDIN"
            ) as copy:
                for pk in tqdm(range(1, n + 1), desc="images", unit="row", disable=not progress, mininterval=1,
                               unit_scale=True):
                    copy.write_row((pk, f"products/bench/{pk}.jpg", 0, True, 224, 224, f"{pk:064x}", now, now, pk))
                for pk in look_ids:
                    copy.write_row((pk, f"looks/bench/{pk}.jpg", 0, True, 400, 800, f"{pk:064x}", now, now, pk))
            seconds["images"] = time.perf_counter() - started

            started = time.perf_counter()
            with cursor.copy(
                "COPY recommender_imageanalysis (id, status, error, is_full_shot, pose_score, gender, gender_source, "
                "gender_confidence, width, height, timings, model_versions, attempts, started_at, finished_at, "
                "created_at, updated_at, image_id, product_id, sha256, image_version) FROM STDIN"
            ) as copy:
                versions = json.dumps({"embedder": MODEL_VERSION})
                for pk in tqdm(range(1, n + 1), desc="analyses", unit="row", disable=not progress, mininterval=1,
                               unit_scale=True):
                    copy.write_row((pk, "done", "", False, 0.1, GENDERS[inventory.gender[pk - 1]], "product", 1.0,
                                    224, 224, "{}", versions, 1, now, now, now, now, pk, pk, f"{pk:064x}", ""))
                for pk, gender in zip(look_ids, look_genders):
                    copy.write_row((pk, "done", "", True, 0.95, gender, "product", 1.0, 400, 800, "{}", versions,
                                    1, now, now, now, now, pk, pk, f"{pk:064x}", ""))
            seconds["analyses"] = time.perf_counter() - started

            started = time.perf_counter()
            with cursor.copy(
                "COPY recommender_detectedarticle (id, category, x1, y1, x2, y2, confidence, gender, base_colour, "
                "price, is_active, is_inventory, is_whole_image, embedding, model_version, created_at, product_id, "
                "analysis_id, article_type, colour, colour_name, kind) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "varchar", "float8", "float8", "float8", "float8", "float8", "varchar",
                                "varchar", "numeric", "bool", "bool", "bool", "vector", "varchar", "timestamptz",
                                "int8", "int8", "varchar", "vector", "varchar", "vector"])
                descriptors = {word: colour_descriptor(word, rng) for word in COLOURS}
                from recommender.conf import KIND_DIM

                kinds = kind_descriptors(len(inventory.centres), KIND_DIM, rng)
                for i in tqdm(range(n), desc="articles", unit="row", disable=not progress, mininterval=1,
                              unit_scale=True):
                    pk = i + 1
                    copy.write_row((
                        pk, CATEGORIES[inventory.category[i]], 0.0, 0.0, 1.0, 1.0, 1.0, GENDERS[inventory.gender[i]],
                        COLOURS[inventory.colour[i]], Decimal(f"{inventory.price[i]:.2f}"), True, True, True,
                        inventory.vectors[i], MODEL_VERSION, now, pk, pk, "",
                        descriptors[COLOURS[inventory.colour[i]]], COLOURS[inventory.colour[i]].title(),
                        kinds[inventory.cluster[i]],
                    ))
                article = n
                for pk, gender in zip(look_ids, look_genders):
                    for category, box in LOOK_LAYOUT[gender]:
                        article += 1
                        c = CATEGORIES.index(category)
                        candidates = np.flatnonzero(inventory.cluster_category == c)
                        weight = inventory.cluster_weight[candidates]
                        cluster = rng.choice(candidates, p=weight / weight.sum())
                        vector = _points(rng, inventory.centres[cluster], inventory.bases[cluster], 1, QUERY_NOISE)[0]
                        word = COLOURS[int(rng.integers(len(COLOURS)))]
                        copy.write_row((article, category, *box, 0.9, gender, "", Decimal("89.00"), True, False,
                                        False, vector, MODEL_VERSION, now, pk, pk, "",
                                        colour_descriptor(word, rng), word.title(), kinds[cluster]))
            seconds["articles"] = time.perf_counter() - started

            for table in ("catalog_product", "catalog_productimage", "recommender_imageanalysis",
                          "recommender_detectedarticle"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT max(id) FROM {table}))")
        conn.commit()

        with conn.cursor() as cursor:
            conn.autocommit = True
            started = time.perf_counter()
            cursor.execute("VACUUM ANALYZE")
            seconds["vacuum_analyze"] = time.perf_counter() - started
            index = build_indexes(cursor, indexes, n, progress)
    rows = {"products": n + looks, "images": n + looks, "analyses": n + looks,
            "inventory_articles": n, "look_articles": 3 * looks}
    return LoadReport(rows=rows, seconds={k: round(v, 2) for k, v in seconds.items()}, index=index,
                      look_product_ids=look_ids)


@contextmanager
def _index_progress(dbname, total, enabled, name="hnsw build"):
    """A progress bar fed by ``pg_stat_progress_create_index`` (polled from a second connection)."""
    if not enabled:
        yield
        return
    from . import database

    stop = threading.Event()

    def poll():
        bar = tqdm(total=total, desc=name, leave=True, unit="row", unit_scale=True, mininterval=1)
        try:
            with database.connect(dbname, autocommit=True) as conn:
                while not stop.wait(1.0):
                    row = conn.execute("SELECT tuples_done FROM pg_stat_progress_create_index "
                                       "WHERE datname = current_database()").fetchone()
                    if row and row[0] and row[0] > bar.n:
                        bar.update(min(row[0], total) - bar.n)
        except Exception:  # only the bar is lost
            pass
        finally:
            bar.close()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def build_indexes(cursor, indexes, n, progress=True):
    """Re-create the migrations' HNSW indexes (same definitions, one after the other); time and size each."""
    # Enough memory for each graph to be built in memory (pgvector warns and slows down otherwise).
    memory_mb = int(min(8192, max(256, n * 2.5 / 1024)))
    cursor.execute(f"SET maintenance_work_mem = '{memory_mb}MB'")
    workers = cursor.execute("SHOW max_parallel_maintenance_workers").fetchone()[0]
    built = []
    for name, definition in indexes:
        started = time.perf_counter()
        rows = cursor.execute(f"SELECT count(*) FROM {ARTICLE_TABLE} WHERE {definition.split(' WHERE ', 1)[1]}"
                              if " WHERE " in definition else f"SELECT count(*) FROM {ARTICLE_TABLE}").fetchone()[0]
        with _index_progress(cursor.connection.info.dbname, rows, progress, name):
            cursor.execute(definition)
        seconds = time.perf_counter() - started
        size = cursor.execute("SELECT pg_relation_size(%s)", [name]).fetchone()[0]
        built.append({"name": name, "definition": definition, "rows": int(rows), "build_seconds": round(seconds, 2),
                      "size_mb": round(size / 2**20, 1), "size_bytes": int(size)})
    table = cursor.execute(f"SELECT pg_total_relation_size('{ARTICLE_TABLE}'), "
                           f"pg_relation_size('{ARTICLE_TABLE}')").fetchone()
    cursor.execute(f"ANALYZE {ARTICLE_TABLE}")
    return {
        "indexes": built,
        "count": len(built),
        "definition": "; ".join(index["definition"] for index in built),
        "build_seconds": round(sum(index["build_seconds"] for index in built), 2),
        "size_bytes": sum(index["size_bytes"] for index in built),
        "size_mb": round(sum(index["size_bytes"] for index in built) / 2**20, 1),
        "table_heap_mb": round(table[1] / 2**20, 1),
        "table_total_mb": round(table[0] / 2**20, 1),
        "maintenance_work_mem_mb": memory_mb,
        "max_parallel_maintenance_workers": int(workers),
    }
