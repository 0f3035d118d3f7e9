"""``search_by_photo(image)``: a visitor's photo → the shop's most similar products, per article in it.

The photo goes through the same pipeline as a product photo, except that articles are looked for whatever
the pose gate says (visitors' photos are often half-body shots or close-ups). When no article is found the
whole photo is searched as one article of the look category predicted for it (``predicted_category``) or the
visitor's ``category``. Nothing of the photo is stored.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import replica
from .analysis import colour_fields, kind_fields
from .conf import settings
from .filters import Filters
from .looks import LookRow, attach_cards, rows_for
from .models import DetectedArticle
from .queries import ArticleQuery, category_vote, search_many


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


# Nearest inventory articles whose look categories vote for the category of a photo with no detected article.
CATEGORY_VOTE_NEIGHBOURS = 10


def predicted_category(embedding, gender, embedder_version, filters):
    """The look category of a whole photo (``WHOLE_PHOTO_CATEGORY``): the embedder's category head when it has
    one (``ml.category_head``), else the vote of its nearest inventory articles (None: no inventory)."""
    if settings.WHOLE_PHOTO_CATEGORY == "head":
        from ml.category_head import default_head

        category = default_head().category_of(embedding, embedder_version)
        if category is not None:
            return category
    with replica.look_reads() as db, db.cursor() as cursor:
        return category_vote(cursor, embedding, genders=settings.compatible_genders(gender), filters=filters,
                             model_version=embedder_version, neighbours=CATEGORY_VOTE_NEIGHBOURS)


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
    picture = load_image(image, max_pixels=settings.SEARCH_MAX_PIXELS, max_side=settings.SEARCH_DECODE_SIDE)
    # Visitors' photos are often half-body or close-ups: look for articles whatever the pose gate says.
    result = pipeline.analyse(picture, gender=gender or None, detect=True)
    chosen_gender = gender or getattr(result, "gender", None) or None
    source = "visitor" if gender else getattr(result, "gender_source", None)

    articles = []
    for found in result.articles or []:
        if found.category not in settings.CATEGORIES or found.confidence < settings.floor(found.category):
            continue
        if category and found.category != category:
            continue
        x1, y1, x2, y2 = (float(min(max(v, 0.0), 1.0)) for v in found.box)
        articles.append(DetectedArticle(
            category=found.category, x1=x1, y1=y1, x2=x2, y2=y2, confidence=float(found.confidence),
            gender=chosen_gender or "", embedding=np.asarray(found.embedding, dtype=np.float32),
            **colour_fields(getattr(found, "colour", None)), **kind_fields(getattr(found, "kind", None)),
        ))
    embedder_version = (getattr(result, "model_versions", None) or {}).get("embedder")
    rows = rows_for([(None, articles)])
    embedding = np.asarray(result.image_embedding, dtype=np.float32)

    def whole_photo_row(whole_category):
        whole = DetectedArticle(
            category=whole_category or "", x1=0.0, y1=0.0, x2=1.0, y2=1.0, confidence=1.0,
            gender=chosen_gender or "", is_whole_image=True, embedding=embedding,
            **colour_fields(getattr(result, "image_colour", None)), **kind_fields(getattr(result, "image_kind", None)),
        )
        return LookRow(article=whole, category=whole_category or "",
                       label=settings.label(whole_category) if whole_category else "Similar products",
                       articles=[whole])

    if not rows:
        # No article found (a close-up of one shoe, one bag…): the whole photo is one article, of the category
        # most common among the shop's nearest articles unless the visitor chose one.
        rows = [whole_photo_row(category or predicted_category(embedding, chosen_gender, embedder_version, filters))]
    elif not category and not getattr(result, "is_full_shot", False):
        # A close-up in which the detector found something: what the photo shows as a whole may still be another
        # kind of article (a bag held against a coat is found as the coat). Its vote adds that row when missing.
        voted = predicted_category(embedding, chosen_gender, embedder_version, filters)
        if voted and voted not in {row.category for row in rows}:
            rows.append(whole_photo_row(voted))
    for index, row in enumerate(rows):
        row.article.pk = None
        row.index = index
    queries = [ArticleQuery(row.article.embedding, row.category or None, settings.compatible_genders(chosen_gender),
                            embedder_version, row.article.colour, row.article.kind) for row in rows]
    # The nearest neighbours and the cards from the read replica when one is configured.
    with replica.look_reads() as db:
        with db.cursor() as cursor:  # the statement sets its own search settings
            found = search_many(cursor, queries, filters=filters)
        hits = list(zip(rows, found))
        attach_cards(hits)
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
