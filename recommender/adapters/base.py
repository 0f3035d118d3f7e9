"""The product interface: how a shop describes its products and images to the recommender.

A shop names one adapter class in ``BUY_THE_LOOK["PRODUCT_ADAPTER"]`` (a dotted path) and may pass it
options through ``BUY_THE_LOOK["ADAPTER_OPTIONS"]`` (keyword arguments of its constructor). The recommender
never reads the shop's product fields itself: everything goes through the methods below, so a shop with
its own product model writes one small subclass (see docs/add-to-your-shop.md).

What must be defined (a missing one is an ``ImproperlyConfigured`` at start-up naming the setting):

- ``product_model`` / ``image_model``: ``"app_label.ModelName"`` of the shop's product and product image
  models. The recommender's tables point at them with foreign keys (so deleting an image or a product
  deletes its vectors in the same transaction); they are read when ``manage.py migrate`` first creates the
  recommender's tables, like ``AUTH_USER_MODEL``.
- ``describe(product) -> ProductFacts``: gender, look category, article type, colours, price, whether it
  can be sold now, name, URL and a card image — what look queries filter on and what a card shows.
- ``product_of(image) -> product`` and ``read_image(image) -> bytes``.
- ``images_of(product) -> list of images``, the one shown first (primary) first.
- ``image_facts(image) -> ImageFacts``: URL, size and a ``version`` that changes when the file changes.

Optional (good defaults here): ``describe_many`` (batch for cards; override to save queries),
``visible_products`` (what visitors may see through the look API), ``all_images`` (what
``manage.py analyse`` walks), ``connect`` (ready-made receivers that call ``recommender.hooks``),
``admin_search_fields``, ``page_template``.

Errors: an adapter method that raises for one product (a broken attribute, a missing price) is the shop's
business; the recommender logs it and treats the product as undescribable (never in a look row), it does
not fail a page.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import Decimal

from django.apps import apps

from ..taxonomy import GENDERS, LOOK_CATEGORIES


@dataclass(frozen=True)
class ProductFacts:
    """What the recommender knows of one product, as its adapter describes it."""

    #: the product's primary key in the shop
    pk: int
    #: display name of the card
    name: str
    #: the product page (path or absolute URL)
    url: str = ""
    #: "Men", "Women", "Boys", "Girls", "Unisex", or "" when unknown (then it is never in a gendered look row)
    gender: str = ""
    #: "top", "bottom", "dress", "footwear", "bag", or "" (sold, but never a look recommendation)
    look_category: str = ""
    #: the shop's finer kind of article ("Jeans", "Heels", …), for display and similar-product search
    article_type: str = ""
    #: colour names, lower case, the main colour first (may be empty)
    colours: tuple = ()
    #: the price a visitor pays now (None: unknown, then price filters exclude it)
    price: Decimal | None = None
    #: currency code of ``price`` (display only)
    currency: str = ""
    #: can a visitor buy it now (active, in stock)? Unavailable products are never recommended.
    is_available: bool = True
    #: the shop's reference (SKU, UPC), shown to staff and in the API
    reference: str = ""
    #: the card's picture (URL) and its size in pixels, when known
    image_url: str = ""
    image_width: int | None = None
    image_height: int | None = None
    #: why the adapter could not describe the product fully ("no gender attribute", …); "" when it could
    problems: tuple = field(default=())

    @property
    def colour(self) -> str:
        """The main colour, or ""."""
        return self.colours[0] if self.colours else ""

    @property
    def is_recommendable(self) -> bool:
        """May appear in a look row: sold now and of a look category."""
        return self.is_available and self.look_category in LOOK_CATEGORIES


@dataclass(frozen=True)
class ImageFacts:
    """One product image, as its adapter describes it."""

    pk: int
    product_pk: int
    url: str
    width: int | None = None
    height: int | None = None
    #: changes whenever the file changes (a content hash, or the stored file name): an analysis of an older
    #: version is not stored over a newer one
    version: str = ""
    #: the file's name in storage, for messages ("image file 'x.jpg' is missing")
    name: str = ""


class ProductAdapter(ABC):
    """Base class of product adapters; subclass it and define the members listed in the module docstring
    (the abstract methods below; ``conf.load_adapter_class`` names the ones a subclass lacks)."""

    #: ``"app_label.ModelName"`` of the shop's product and product image models
    product_model: str = ""
    image_model: str = ""
    #: the image model's foreign key to its product
    image_product_field: str = "product"
    def __init__(self, **options):
        if options:
            raise TypeError(f"{type(self).__name__} takes no options, got {', '.join(sorted(options))}")

    # -- models --------------------------------------------------------------------------------
    def get_product_model(self):
        return apps.get_model(self.product_model)

    def get_image_model(self):
        return apps.get_model(self.image_model)

    # -- products ------------------------------------------------------------------------------
    @abstractmethod
    def describe(self, product) -> ProductFacts:
        """The facts of ``product`` (see ``ProductFacts``)."""

    def describe_many(self, products) -> list[ProductFacts]:
        """``describe`` of each product; adapters override it to fetch related data in a few queries."""
        return [self.describe(product) for product in products]

    def products_by_pk(self, pks) -> dict:
        """``{pk: product}`` for the cards of a look row; override to add ``select_related``/prefetches."""
        return {product.pk: product for product in self.get_product_model()._default_manager.filter(pk__in=pks)}

    def visible_products(self, request=None):
        """Products a visitor may see through the look API (a 404 otherwise); staff see every product."""
        return self.get_product_model()._default_manager.all()

    # -- images --------------------------------------------------------------------------------
    @abstractmethod
    def product_of(self, image):
        """The product ``image`` belongs to."""

    @abstractmethod
    def read_image(self, image) -> bytes:
        """The image file's bytes; ``FileNotFoundError``/``OSError`` when it cannot be read."""

    @abstractmethod
    def images_of(self, product) -> list:
        """The product's images, the one shown first first."""

    @abstractmethod
    def image_facts(self, image) -> ImageFacts:
        """URL, size and version of ``image`` (see ``ImageFacts``)."""

    #: Optional: ``image_order(image) -> sortable key`` giving ``images_of``'s order without a query (e.g.
    #: ``(image.position, image.pk)``). When set, the widget reads the photos together with their articles
    #: (one query less per page); when None it asks ``images_of(product)``.
    image_order = None

    def all_images(self):
        """Every product image (a queryset), for ``manage.py analyse --all``."""
        return self.get_image_model()._default_manager.all()

    def images_of_products(self, product_pks):
        """Images of these products (a queryset)."""
        return self.all_images().filter(**{f"{self.image_product_field}__pk__in": list(product_pks)})

    # -- integration ---------------------------------------------------------------------------
    #: ``ImageAnalysis`` admin search, as lookups from ``ImageAnalysis`` (e.g. ``"product__title"``)
    admin_search_fields: tuple = ()
    #: the template the search-by-photo page extends (it fills the ``title`` and ``content`` blocks)
    page_template: str = "base.html"

    def connect(self):
        """Connect ready-made receivers that tell ``recommender.hooks`` about changes (called once at start-up
        when ``BUY_THE_LOOK["CONNECT_RECEIVERS"]`` is true). The base class connects nothing."""

    # -- helpers for subclasses ----------------------------------------------------------------
    @staticmethod
    def clean_gender(value) -> str:
        """A gender in the recommender's vocabulary ("Men", "Women", …) or "" (case-insensitive; "male",
        "man", "female", "woman", "boy", "girl" accepted)."""
        text = str(value or "").strip().lower()
        aliases = {"male": "Men", "man": "Men", "m": "Men", "female": "Women", "woman": "Women", "w": "Women",
                   "f": "Women", "boy": "Boys", "girl": "Girls", "kids": "", "unknown": ""}
        if text in aliases:
            return aliases[text]
        for gender in GENDERS:
            if text == gender.lower():
                return gender
        return ""

    @staticmethod
    def clean_colours(*values) -> tuple:
        """Lower-case colour names, without blanks or repeats, in the order given."""
        colours = []
        for value in values:
            for part in str(value or "").replace("/", ",").split(","):
                part = part.strip().lower()
                if part and part not in colours:
                    colours.append(part)
        return tuple(colours)
