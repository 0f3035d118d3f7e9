"""``look_for(product)``: the "buy the look" rows of a product.

One row per article of the product's full-shot photo(s) ("Top", "Bottom", "Footwear", …), each holding the
k nearest *recommendable* products (a product's own article, see ``recommender.analysis``) of the same
look category and a compatible gender (``BUY_THE_LOOK["GENDER_POLICY"]``: the same or Unisex, never the
other), excluding the product itself and the products showing the same photo, optionally filtered by
colour and price. The products come back as ``Recommendation`` cards described by the shop's adapter.

Database work of a look: one statement for the articles, their photos and the products of every row
(``queries.look_hits_sql``), one for the cards (``adapter.products_by_pk`` + ``describe_many``), and an exact
search for a row whose filters are so selective that the index scan found fewer than k.
"""
from __future__ import annotations

import logging
import operator
from dataclasses import dataclass, field, replace
from functools import reduce

from django.db.models import JSONField, Q
from django.db.models.expressions import RawSQL

from ml.boxes import suppress_overlaps

from . import hooks, replica
from .adapters import ProductFacts
from .conf import settings
from .filters import Filters
from .models import DetectedArticle, ImageAnalysis
from .prepared import instances, prepared
from .queries import Hit, SamePhotos, look_hits_sql, nearest_products, uses_candidates
from .sync import describe

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recommendation:
    """A product card of a look row: the adapter's facts of the product and its distance to the article.

    The facts' fields read through: ``card.name``, ``card.url``, ``card.price``, ``card.image_url`` …
    """

    product: ProductFacts
    distance: float
    #: Bhattacharyya coefficient of the two articles' colour histograms (None: colours not compared)
    colour_similarity: float | None = None
    #: main colour read from the product's photo
    colour_name: str = ""
    #: "same" (same main colour as the article), "similar" (colour similarity ≥ SIMILAR_COLOUR) or ""
    colour_match: str = ""

    @property
    def similarity(self) -> float:
        return 1.0 - self.distance

    @property
    def colour_label(self) -> str:
        return {"same": "Same colour", "similar": "Similar colour"}.get(self.colour_match, "")

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.product, name)


@dataclass
class LookRow:
    """One article of a photo and its recommendations (``Recommendation`` cards, nearest first)."""

    article: DetectedArticle
    category: str
    label: str
    recommendations: list = field(default_factory=list)
    #: every box of this category in the photo (e.g. both shoes), the best one first
    articles: list = field(default_factory=list)
    #: the photo (``ImageFacts``) the article was found in; None for a visitor's photo
    image: object = None

    @property
    def key(self):
        return f"{self.category}-{self.article.pk or id(self.article)}"


def above_floor():
    """``Q``: articles of a look category at or above that category's confidence floor."""
    return reduce(operator.or_, (Q(category=category, confidence__gte=settings.floor(category))
                                 for category in settings.CATEGORIES))


def rows_for(articles_by_image):
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


def attach_cards(rows_with_hits):
    """Attach ``Recommendation`` cards (the adapter's facts, in the order found) to each row.

    A product deleted meanwhile, or one the adapter cannot describe or says is not available now, is left out.
    """
    ids = {hit[0] for _, hits in rows_with_hits for hit in hits}
    facts = {}
    if ids:
        adapter = settings.adapter
        products = [product for _, product in sorted(adapter.products_by_pk(ids).items())]
        try:
            described = adapter.describe_many(products)
        except Exception:  # one bad product: describe them one by one, leaving out those that fail
            described = [item for item in map(describe, products) if item is not None]
        facts = {item.pk: item for item in described}
    for row, hits in rows_with_hits:
        article_colour = getattr(row.article, "colour_name", "") or ""
        row.recommendations = [
            Recommendation(product=facts[hit.product_id], distance=hit.distance,
                           colour_similarity=hit.colour_similarity, colour_name=hit.colour_name,
                           colour_match=colour_match(article_colour, hit))
            for hit in map(as_hit, hits)
            if hit.product_id in facts and facts[hit.product_id].is_available
        ]


def as_hit(hit) -> Hit:
    return hit if isinstance(hit, Hit) else Hit(*hit)


def colour_match(article_colour: str, hit) -> str:
    """"same", "similar" or "" for a hit of an article whose main colour is ``article_colour``."""
    if hit.colour_similarity is None:
        return ""
    if article_colour and hit.colour_name == article_colour:
        return "same"
    return "similar" if hit.colour_similarity >= float(settings.SIMILAR_COLOUR) else ""


def full_shot_articles(product, filters=None):
    """``[(ImageFacts, [DetectedArticle])]`` of ``product``'s analysed full shots, in the shop's image order.

    One query for the articles with their analyses and photos when the adapter has ``image_order``; otherwise a
    second one, ``images_of(product)``, for the photos' order. With ``filters``, the same query also finds the
    products of each row's article (``queries.look_hits_sql``: its ``look_hits``, the vectors stay in the
    database and are not read).
    """
    adapter = settings.adapter
    ordered = callable(getattr(adapter, "image_order", None))

    def articles_of(product_pk):
        query = DetectedArticle.objects.filter(
            analysis__product_id=product_pk,
            analysis__status=ImageAnalysis.Status.DONE,
            analysis__is_full_shot=True,
        ).filter(above_floor()).order_by("analysis_id", "-confidence", "id")
        if filters is not None:
            sql, params = look_hits_sql(filters, product_pk, article=DetectedArticle._meta.db_table)
            query = query.defer("embedding", "colour", "kind").annotate(
                look_hits=RawSQL(sql, params, output_field=JSONField()))
        return query.select_related("analysis", "analysis__image") if ordered else query.select_related("analysis")

    if filters is not None and filters.is_plain():
        # the product page's statement: compiled once, prepared once per connection (recommender.prepared)
        articles = instances(("look", filters.k, ordered), articles_of, product.pk)
    else:
        articles = list(prepared(articles_of(product.pk)) if filters is not None else articles_of(product.pk))
    if not articles:
        return []
    by_image = {}
    for article in articles:
        by_image.setdefault(article.analysis.image_id, []).append(article)
    if ordered:
        images = {article.analysis.image_id: article.analysis.image for article in articles}
        product_field = f"{adapter.image_product_field}_id"
        shown = sorted((image for image in images.values() if getattr(image, product_field, None) == product.pk),
                       key=adapter.image_order)
    else:
        shown = adapter.images_of(product)
    photos = []
    for image in shown:
        if image.pk not in by_image:
            continue
        facts, analysis = adapter.image_facts(image), by_image[image.pk][0].analysis
        if not (facts.width and facts.height) and analysis.width and analysis.height:
            # a shop that does not store image sizes (Oscar): the analysis measured the photo
            facts = replace(facts, width=analysis.width, height=analysis.height)
        photos.append((facts, by_image[image.pk]))
    return photos


def look_for(product, k=None, colours=None, exclude_colours=None, min_price=None, max_price=None):
    """Rows ``[LookRow]`` for each article of ``product``'s full-shot photo(s); ``[]`` when it has none.

    ``product``: an instance of the adapter's product model. Raises ``ValueError`` (with a message naming
    the parameter) for a bad k or price.
    """
    filters = Filters.build(k, colours, exclude_colours, min_price, max_price)
    # Every read of a look (articles, nearest neighbours, cards) from the read replica when one is configured.
    with replica.look_reads() as db:
        # one statement: the articles, their photos and each row's products (the product itself and those
        # showing the same photo excluded inside it); its own search settings, no transaction needed
        rows = rows_for(full_shot_articles(product, filters))
        if not rows:
            return []
        to_product_pk = settings.adapter.get_product_model()._meta.pk.to_python
        # look_hits: [searched live, hits]; None only for an article the SQL did not take as its row's best (it
        # takes the same one)
        answers = [row.article.look_hits or (None, None) for row in rows]
        found = [[Hit(to_product_pk(hit[0]), *hit[1:]) for hit in hits or ()] for _, hits in answers]
        short = [index for index, (_, hits) in enumerate(answers) if hits is None or len(found[index]) < filters.k]
        if any(live for live, _ in answers) and uses_candidates(filters):
            hooks.look_searched_live(product.pk)  # rows that could have read lists: a worker makes them
        if short:  # a filter so selective that the index scan stopped early: exact searches (search_many's rule)
            with db.cursor() as cursor:
                for index in short:
                    article = rows[index].article
                    found[index] = nearest_products(
                        cursor, article.embedding, category=rows[index].category,
                        genders=settings.compatible_genders(article.gender), filters=filters,
                        exclude_ids=SamePhotos(product.pk), exact=True, model_version=article.model_version)
        attach_cards(list(zip(rows, found)))
    return rows
