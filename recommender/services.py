"""The recommender's entry points: ``look_for(product)`` and ``search_by_photo(image)``.

Both answer with rows, one per article found in a photo ("Top", "Bottom", "Footwear", …), each holding the
k nearest *inventory* products (a product's own article, see ``recommender.analysis``) of the same look
category and a compatible gender (``BUY_THE_LOOK["GENDER_POLICY"]``: the same or Unisex, never the other),
excluding the product itself and its duplicates, optionally filtered by colour and price.

How k is kept however narrow the filter: one SQL query per article asks the partial HNSW index for the
nearest rows that pass the filter with pgvector's iterative scan (``hnsw.iterative_scan = relaxed_order``,
set with ``set_config(..., is_local => true)`` inside a transaction, so it works through connection
poolers and with psycopg 3 server-side binding), re-orders them by exact distance and folds several
images of one product into one recommendation. Only when that yields fewer than k products (a filter so
selective that the scan gave up) a second, exact query runs over the filter's B-tree index — which
returns k whenever k candidates exist.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import numpy as np
from django.apps import apps
from django.db import connection, transaction
from django.db.models import Prefetch

from .conf import settings
from .models import DetectedArticle, ImageAnalysis

TABLE = DetectedArticle._meta.db_table


def product_model():
    return apps.get_model(settings.PRODUCT_MODEL)


def image_model():
    return apps.get_model(settings.PRODUCT_IMAGE_MODEL)


@dataclass
class LookRow:
    """One article of a photo and its recommendations (``Product`` instances with ``.distance``)."""

    article: DetectedArticle
    category: str
    label: str
    recommendations: list = field(default_factory=list)
    #: every box of this category in the photo (e.g. both shoes), the best one first
    articles: list = field(default_factory=list)
    image: object = None

    @property
    def key(self):
        return f"{self.category}-{self.article.pk or id(self.article)}"


@dataclass
class SearchResult:
    """What ``search_by_photo`` found in a visitor's photo."""

    rows: list
    width: int
    height: int
    is_full_shot: bool
    gender: str | None
    gender_source: str | None
    gender_confidence: float | None
    timings: dict
    picture: object = None  # the decoded PIL image (for showing it back)


# --------------------------------------------------------------------------------------------------
# Filters


def _normalise_colours(colours):
    if not colours:
        return []
    if isinstance(colours, str):
        colours = colours.split(",")
    result = []
    for colour in colours:
        for part in str(colour).split(","):
            part = part.strip().lower()
            if part and part not in result:
                result.append(part)
    return result


def _price(value, name):
    if value in (None, ""):
        return None
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not price.is_finite() or price < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return price


def _k(k):
    if k in (None, ""):
        return settings.K
    try:
        k = int(k)
    except (TypeError, ValueError):
        raise ValueError(f"k must be a whole number, got {k!r}") from None
    if not 1 <= k <= settings.MAX_K:
        raise ValueError(f"k must be between 1 and {settings.MAX_K}, got {k}")
    return k


@dataclass
class Filters:
    k: int
    colours: list
    exclude_colours: list
    min_price: Decimal | None
    max_price: Decimal | None

    @classmethod
    def build(cls, k=None, colours=None, exclude_colours=None, min_price=None, max_price=None):
        filters = cls(
            k=_k(k),
            colours=_normalise_colours(colours),
            exclude_colours=_normalise_colours(exclude_colours),
            min_price=_price(min_price, "min_price"),
            max_price=_price(max_price, "max_price"),
        )
        if filters.min_price is not None and filters.max_price is not None and filters.min_price > filters.max_price:
            raise ValueError("min_price is greater than max_price")
        return filters


# --------------------------------------------------------------------------------------------------
# The nearest-neighbour query


def _vector_literal(embedding):
    vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
    return "[" + ",".join(f"{value:.7g}" for value in vector.tolist()) + "]"


def _where(category, genders, filters, exclude_ids, model_version=None):
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
    if exclude_ids:
        clauses.append("NOT (product_id = ANY(%s))")
        params.append(sorted(exclude_ids))
    return " AND ".join(clauses), params


def configure_search(cursor, limit):
    """Iterative HNSW scan for this transaction (``SET LOCAL`` through ``set_config``, parameter-safe)."""
    ef_search = min(max(int(settings.EF_SEARCH), int(limit)), 1000)
    cursor.execute(
        "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', %s, true)",
        [str(ef_search)],
    )


def nearest_products(cursor, embedding, *, category, genders, filters, exclude_ids=(), exact=False,
                     model_version=None):
    """``[(product_id, distance), …]``: the ``filters.k`` nearest inventory products, nearest first.

    Approximate (HNSW, iterative scan) unless ``exact``; call ``configure_search`` first in the same
    transaction for the approximate form. ``model_version``: only vectors of that embedder.
    """
    where, params = _where(category, genders, filters, exclude_ids, model_version)
    vector = _vector_literal(embedding)
    if exact:
        sql = (
            f"SELECT product_id, MIN(embedding <=> %s::vector) AS distance FROM {TABLE} "
            f"WHERE {where} GROUP BY product_id ORDER BY distance, product_id LIMIT %s"
        )
        cursor.execute(sql, [vector, *params, filters.k])
    else:
        limit = filters.k * max(1, int(settings.OVERFETCH))
        sql = (
            f"WITH candidates AS MATERIALIZED ("
            f"SELECT product_id, embedding <=> %s::vector AS distance FROM {TABLE} "
            f"WHERE {where} ORDER BY embedding <=> %s::vector LIMIT %s) "
            f"SELECT product_id, MIN(distance) AS distance FROM candidates "
            f"GROUP BY product_id ORDER BY distance, product_id LIMIT %s"
        )
        cursor.execute(sql, [vector, *params, vector, limit, filters.k])
    return [(product_id, float(distance)) for product_id, distance in cursor.fetchall()]


def _search(cursor, embedding, *, category, genders, filters, exclude_ids, model_version=None):
    found = nearest_products(
        cursor, embedding, category=category, genders=genders, filters=filters, exclude_ids=exclude_ids,
        model_version=model_version,
    )
    if len(found) < filters.k:
        # A filter so selective that the iterative scan stopped early: exact search over the B-tree index.
        found = nearest_products(
            cursor, embedding, category=category, genders=genders, filters=filters,
            exclude_ids=exclude_ids, exact=True, model_version=model_version,
        )
    return found


def _fill(rows_with_hits):
    """Attach ``Product`` instances (with images prefetched and ``.distance`` set) to each row."""
    ids = {product_id for _, hits in rows_with_hits for product_id, _ in hits}
    Image = image_model()
    products = (
        product_model().objects.filter(pk__in=ids).prefetch_related(
            Prefetch("images", queryset=Image.objects.order_by("-is_primary", "position", "id"))
        )
        if ids else []
    )
    by_id = {product.pk: product for product in products}
    for row, hits in rows_with_hits:
        row.recommendations = []
        for product_id, distance in hits:
            product = by_id.get(product_id)
            if product is None:  # deleted meanwhile
                continue
            product = copy.copy(product)
            product.distance = distance
            product.similarity = 1.0 - distance
            row.recommendations.append(product)


def _iou(a, b):
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


def suppress_overlaps(articles, threshold=0.45):
    """Same-category boxes, most confident first, without the ones mostly covering a kept box (NMS)."""
    kept = []
    for article in sorted(articles, key=lambda a: -a.confidence):
        if all(_iou(article, other) < threshold for other in kept):
            kept.append(article)
    return kept


def _rows_for(articles_by_image, genders_for):
    """Group articles into rows: one per (image, category), best article first, in category order."""
    order = {name: index for index, name in enumerate(settings.CATEGORIES)}
    rows = []
    for image, articles in articles_by_image:
        grouped = {}
        for article in sorted(articles, key=lambda a: -a.confidence):
            grouped.setdefault(article.category, []).append(article)
        for category in sorted(grouped, key=lambda c: order.get(c, len(order))):
            group = suppress_overlaps(grouped[category])
            rows.append(
                LookRow(article=group[0], category=category, label=settings.label(category),
                        articles=group, image=image)
            )
    return rows


def duplicate_product_ids(product):
    """The product itself and every product showing one of its image files (same sha256)."""
    Image = image_model()
    shas = Image.objects.filter(product_id=product.pk).exclude(sha256="").values("sha256")
    ids = set(Image.objects.filter(sha256__in=shas).values_list("product_id", flat=True))
    ids.add(product.pk)
    return ids


def full_shot_analyses(product):
    """Done full-shot analyses of ``product``'s images, primary image first, with their images."""
    return list(
        ImageAnalysis.objects.filter(
            image__product_id=product.pk, status=ImageAnalysis.Status.DONE, is_full_shot=True
        )
        .select_related("image")
        .order_by("-image__is_primary", "image__position", "image_id")
    )


def look_for(product, k=None, colours=None, exclude_colours=None, min_price=None, max_price=None):
    """Rows ``[LookRow]`` for each article of ``product``'s full-shot photo(s); ``[]`` when it has none.

    Raises ``ValueError`` (with a message naming the parameter) for a bad k or price.
    """
    filters = Filters.build(k, colours, exclude_colours, min_price, max_price)
    analyses = full_shot_analyses(product)
    if not analyses:
        return []
    articles = list(
        DetectedArticle.objects.filter(
            analysis__in=analyses,
            category__in=settings.CATEGORIES,
            confidence__gte=settings.MIN_ARTICLE_CONFIDENCE,
        ).order_by("analysis_id", "-confidence", "id")
    )
    by_analysis = {}
    for article in articles:
        by_analysis.setdefault(article.analysis_id, []).append(article)
    rows = _rows_for([(a.image, by_analysis.get(a.pk, [])) for a in analyses], None)
    if not rows:
        return []
    excluded = duplicate_product_ids(product)
    hits = []
    with transaction.atomic(), connection.cursor() as cursor:
        configure_search(cursor, filters.k * settings.OVERFETCH)
        for row in rows:
            gender = row.article.gender or product.gender
            hits.append((row, _search(
                cursor, row.article.embedding, category=row.category,
                genders=settings.compatible_genders(gender), filters=filters, exclude_ids=excluded,
                model_version=row.article.model_version,
            )))
    _fill(hits)
    return rows


def search_by_photo(image, gender=None, category=None, colours=None, exclude_colours=None,
                    min_price=None, max_price=None, k=None):
    """Analyse a visitor's photo and find products for each article in it.

    ``image``: bytes, a path, a file object or a PIL image (``ml.images.ImageError`` names what is wrong
    with a bad one). ``gender``: "Men", "Women", … or None to predict it. ``category``: only that look
    category's row. When no article is found the whole photo is searched (within ``category`` if given).
    """
    from ml.images import load_image

    from . import pipeline

    filters = Filters.build(k, colours, exclude_colours, min_price, max_price)
    if category and category not in settings.CATEGORIES:
        raise ValueError(f"unknown category {category!r}; choose one of {', '.join(settings.CATEGORIES)}")
    picture = load_image(image)
    # Visitors' photos are often half-body or close-ups: look for articles whatever the pose gate says.
    result = pipeline.analyse(picture, gender=gender or None, detect=True)
    chosen_gender = gender or getattr(result, "gender", None) or None
    source = "visitor" if gender else getattr(result, "gender_source", None)

    articles = []
    for found in result.articles or []:
        if found.category not in settings.CATEGORIES or found.confidence < settings.MIN_ARTICLE_CONFIDENCE:
            continue
        if category and found.category != category:
            continue
        x1, y1, x2, y2 = (float(min(max(v, 0.0), 1.0)) for v in found.box)
        articles.append(DetectedArticle(
            category=found.category, x1=x1, y1=y1, x2=x2, y2=y2, confidence=float(found.confidence),
            gender=chosen_gender or "", embedding=np.asarray(found.embedding, dtype=np.float32),
        ))
    embedder_version = (getattr(result, "model_versions", None) or {}).get("embedder")
    rows = _rows_for([(None, articles)], None)
    if not rows:
        whole = DetectedArticle(
            category=category or "", x1=0.0, y1=0.0, x2=1.0, y2=1.0, confidence=1.0,
            gender=chosen_gender or "", is_whole_image=True,
            embedding=np.asarray(result.image_embedding, dtype=np.float32),
        )
        rows = [LookRow(article=whole, category=category or "",
                        label=settings.label(category) if category else "Similar products", articles=[whole])]
    for index, row in enumerate(rows):
        row.article.pk = None
        row.index = index
    hits = []
    with transaction.atomic(), connection.cursor() as cursor:
        configure_search(cursor, filters.k * settings.OVERFETCH)
        for row in rows:
            hits.append((row, _search(
                cursor, row.article.embedding, category=row.category or None,
                genders=settings.compatible_genders(chosen_gender), filters=filters, exclude_ids=(),
                model_version=embedder_version,
            )))
    _fill(hits)
    return SearchResult(
        rows=rows,
        width=getattr(result, "width", picture.width),
        height=getattr(result, "height", picture.height),
        is_full_shot=bool(getattr(result, "is_full_shot", False)),
        gender=chosen_gender,
        gender_source=source,
        gender_confidence=getattr(result, "gender_confidence", None),
        timings=dict(getattr(result, "timings", None) or {}),
        picture=picture,
    )
