"""The adapter for django-oscar shops (tested with django-oscar 4.2): how an Oscar catalogue describes its
products to the recommender.

Configured in the shop's settings (every option has a default; see ``OscarAdapter``)::

    BUY_THE_LOOK = {
        "PRODUCT_ADAPTER": "recommender.adapters.oscar.OscarAdapter",
        "ADAPTER_OPTIONS": {
            "gender_attribute": "gender",            # product attribute codes
            "colour_attribute": "colour",
            "look_categories": {                     # product class or category → look category
                "T-shirts": "top", "Jeans": "bottom", "Dresses": "dress",
                "Shoes": "footwear", "Bags": "bag",
            },
        },
    }

Where each fact comes from:

- gender and colour(s): the product attributes named by ``gender_attribute`` / ``colour_attribute`` (option,
  multi-option or text attributes); a child product inherits its parent's value unless it has its own;
- look category: ``look_categories`` maps product class names or slugs and category names, slugs, full
  slugs (``"clothing/tops"``) or full names (``"Clothing > Tops"``) to a look category; the product class is
  looked up first, then the product's categories (a child uses its parent's), the deepest match winning and a
  category inheriting its nearest mapped ancestor's value; nothing matching (or a tie between different
  values) means no look category: the product is still sold, but never a look recommendation;
- article type: the ``article_type_attribute`` product attribute when given, else the product class name;
- price and availability: Oscar's own pricing strategy (``partner.strategy.Selector``, so a forked
  ``partner`` app with its own strategy is honoured), called without a request: the price incl. tax when
  the tax is known, else excl. tax; available = public (and its parent public) and
  ``availability.is_available_to_buy``. A parent product gets what the strategy says of parents (Oscar's
  default: available if a child is, priced as its first child);
- name, URL, reference and card picture: ``get_title()``, ``get_absolute_url()``, the UPC and the
  ``original`` file of ``primary_image()`` (a child without images shows its parent's).

Parents, children and standalone products are all described. An image belongs to the product it is
attached to: photos on a parent product are analysed as the parent's, so the parent (the page where a
visitor picks a size or colour variant) is what look rows link to; a child product with photos of its own
is a candidate of its own.

``connect()`` (``BUY_THE_LOOK["CONNECT_RECEIVERS"]``, on by default) connects receivers of Oscar's models
that call ``recommender.hooks`` after the transaction commits, once per object per transaction, skipping
fixture loading (``raw`` saves):

- ``ProductImage`` saved with a new ``original`` file → ``image_changed`` (a save that leaves the file
  alone, e.g. a new caption or display order, does not analyse it again); deleted → ``image_removed``;
- ``Product``, ``StockRecord``, ``ProductAttributeValue``, ``ProductCategory`` (also through
  ``product.categories.add()``) saved or deleted → ``product_changed`` of the product (and of its parent or
  children, whose facts follow it), ``product_removed`` when the product itself is deleted;
- ``Category`` and ``ProductClass`` saved → ``product_changed`` of their analysed products.

Not noticed (call ``recommender.hooks.product_changed(product)`` yourself): a renamed ``AttributeOption``,
and prices or stock changed with ``QuerySet.update()`` (no signals), as for any Django receiver.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from django.apps import apps
from django.core.files.storage import FileSystemStorage
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Prefetch, Q
from django.db.models.signals import m2m_changed, post_delete, post_init, post_save

from ..taxonomy import LOOK_CATEGORIES
from .base import ImageFacts, ProductAdapter, ProductFacts

logger = logging.getLogger(__name__)

__all__ = ["OscarAdapter"]


def _model(name):
    """An Oscar model by ``"app_label.ModelName"`` (labels stay the same when a shop forks an Oscar app)."""
    return apps.get_model(name)


def _key(value) -> str:
    return str(value or "").strip().lower()


class OscarAdapter(ProductAdapter):
    """Describes django-oscar products (``catalogue.Product``) and images (``catalogue.ProductImage``).

    Options (``BUY_THE_LOOK["ADAPTER_OPTIONS"]``, all optional):

    ``gender_attribute`` (default ``"gender"``)
        Code of the product attribute holding the gender. Its value (an option's text or a text value) may
        be "Men", "Women", "Boys", "Girls", "Unisex" or "male"/"female"/"man"/"woman"… in any case; a
        multi-option holding both "Men" and "Women" counts as Unisex. No value: the product has no gender
        and never appears in a gendered look row.
    ``colour_attribute`` (default ``"colour"``)
        Code of the colour attribute: an option, a multi-option or a text ("Navy, White"), main colour first.
    ``look_categories`` (default ``{}``)
        ``{name: look category}`` where a name is a product class name or slug, or a category name, slug,
        full slug or full name (matched case-insensitively) and a look category one of "top", "bottom",
        "dress", "footwear", "bag" — or "" to say "never a look article" (e.g. ``"Gift cards": ""``).
    ``article_type_attribute`` (default ``None``)
        Code of an attribute with the finer kind of article ("Sneakers"); without it the product class name.
    """

    product_model = "catalogue.Product"
    image_model = "catalogue.ProductImage"
    image_product_field = "product"
    admin_search_fields = ("product__title", "product__upc")
    page_template = "oscar/layout.html"  # the search-by-photo page in Oscar's layout (Oscar has no base.html)

    def __init__(self, *, gender_attribute="gender", colour_attribute="colour", look_categories=None,
                 article_type_attribute=None):
        for name, value in (("gender_attribute", gender_attribute), ("colour_attribute", colour_attribute),
                            ("article_type_attribute", article_type_attribute)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a product attribute code (a string), got {value!r}")
        self.gender_attribute = gender_attribute or ""
        self.colour_attribute = colour_attribute or ""
        self.article_type_attribute = article_type_attribute or ""
        look_categories = look_categories or {}
        if not isinstance(look_categories, Mapping):
            raise ValueError(f"look_categories must be a dict of name → look category, got {look_categories!r}")
        self.look_categories = {}
        for name, look in look_categories.items():
            look = _key(look)
            if look and look not in LOOK_CATEGORIES:
                raise ValueError(f"look_categories[{name!r}] = {look!r} is not a look category; use one of "
                                 f"{', '.join(LOOK_CATEGORIES)} (or \"\" for none)")
            self.look_categories[_key(name)] = look

    # -- products ------------------------------------------------------------------------------
    def _attribute_codes(self):
        return [code for code in (self.gender_attribute, self.colour_attribute, self.article_type_attribute)
                if code]

    def _described_queryset(self):
        """Products with everything ``describe`` reads, in a constant number of queries."""
        Product = self.get_product_model()
        values = (
            _model("catalogue.ProductAttributeValue")._default_manager
            .filter(attribute__code__in=self._attribute_codes())
            .select_related("attribute", "value_option")
            .prefetch_related("value_multi_option")
        )
        children = Product._default_manager.filter(is_public=True).prefetch_related("stockrecords")
        return (
            Product._default_manager
            .select_related("product_class", "parent", "parent__product_class")
            .prefetch_related(
                Prefetch("attribute_values", queryset=values, to_attr="_btl_values"),
                Prefetch("parent__attribute_values", queryset=values, to_attr="_btl_values"),
                "stockrecords",
                "images", "parent__images",
                "categories", "parent__categories",
                # Oscar's strategy reads a parent's public children (and their stock records) from here
                Prefetch("children", queryset=children, to_attr="_prefetched_public_children"),
            )
        )

    def describe(self, product) -> ProductFacts:
        return self.describe_many([product])[0]

    def describe_many(self, products) -> list[ProductFacts]:
        """Facts of ``products`` (in their order), read in a constant number of queries. A product whose
        facts cannot be read (its strategy raises, …) is described as not available, with the reason in
        ``problems``, so that one broken product never hides the others."""
        products = list(products)
        pks = [product.pk for product in products if product.pk is not None]
        fresh = {product.pk: product for product in self._described_queryset().filter(pk__in=pks)} if pks else {}
        products = [fresh.get(product.pk, product) for product in products]
        looks = self._look_categories_of(products)
        strategy = self._strategy()
        described = []
        for product in products:
            try:
                described.append(self._facts(product, strategy, looks.get(product.pk, ("", ()))))
            except Exception as exc:  # the shop's data or strategy: this product only
                logger.exception("OscarAdapter could not describe product %s", product.pk)
                described.append(ProductFacts(
                    pk=product.pk, name=str(getattr(product, "title", "") or product.pk), is_available=False,
                    problems=(f"cannot be described: {type(exc).__name__}: {exc}",),
                ))
        return described

    def _strategy(self):
        from oscar.core.loading import get_class

        return get_class("partner.strategy", "Selector")().strategy()

    def _facts(self, product, strategy, look) -> ProductFacts:
        problems = list(look[1])
        values = self._attribute_texts(product)
        gender = ""
        if self.gender_attribute:
            raw = values.get(self.gender_attribute)
            if raw is None:
                problems.append(f"no {self.gender_attribute!r} attribute value")
            else:
                gender = self._gender(raw)
                if not gender:
                    problems.append(f"{self.gender_attribute!r} value {raw!r} is not a gender")
        colours = self.clean_colours(values.get(self.colour_attribute, "")) if self.colour_attribute else ()
        product_class = product.get_product_class()
        article_type = (values.get(self.article_type_attribute, "") if self.article_type_attribute else "") \
            or (product_class.name if product_class is not None else "")

        # as Oscar's own templates do ({% purchase_info_for_product %}): parents have a policy of their own
        info = strategy.fetch_for_parent(product) if product.is_parent else strategy.fetch_for_product(product)
        price, currency = None, ""
        if info.price.exists:
            price = info.price.incl_tax if info.price.is_tax_known else info.price.excl_tax
            currency = info.price.currency or ""
        else:
            problems.append("no price")
        public = product.is_public and (product.parent is None or product.parent.is_public)
        available = bool(public and info.availability.is_available_to_buy)

        image = self._primary_image(product)
        image_url = ""
        if image is not None and image.original and image.original.name:
            image_url = image.original.url
        return ProductFacts(
            pk=product.pk,
            name=product.get_title() or product.upc or f"Product {product.pk}",
            url=product.get_absolute_url(),
            gender=gender,
            look_category=look[0],
            article_type=str(article_type or ""),
            colours=colours,
            price=price,
            currency=currency,
            is_available=available,
            reference=product.upc or "",
            image_url=image_url,
            problems=tuple(problems),
        )

    @staticmethod
    def _primary_image(product):
        """The first image by display order (a child without images: its parent's), or None."""
        images = list(product.images.all())
        if not images and product.parent_id is not None and product.parent is not None:
            images = list(product.parent.images.all())
        images.sort(key=lambda image: (image.display_order, image.pk))
        return images[0] if images else None

    def _attribute_texts(self, product) -> dict:
        """``{code: text}`` of the adapter's attributes; a child's own values win over its parent's."""
        texts = {}
        sources = [product]
        if product.parent_id is not None and product.parent is not None:
            sources.insert(0, product.parent)
        for source in sources:  # parent first, the child overrides
            values = getattr(source, "_btl_values", None)
            if values is None:
                values = source.attribute_values.filter(attribute__code__in=self._attribute_codes()) \
                    .select_related("attribute", "value_option")
            for value in values:
                text = self._value_text(value)
                if text is not None:
                    texts[value.attribute.code] = text
        return texts

    @staticmethod
    def _value_text(value):
        kind = value.attribute.type
        if kind == "option":
            return value.value_option.option if value.value_option is not None else None
        if kind == "multi_option":
            options = [option.option for option in value.value_multi_option.all()]
            return ", ".join(options) if options else None
        raw = getattr(value, f"value_{kind}", None)
        if raw is None or raw == "":
            return None
        return str(raw)

    def _gender(self, text) -> str:
        genders = []
        for part in str(text).replace("/", ",").split(","):
            gender = self.clean_gender(part)
            if gender and gender not in genders:
                genders.append(gender)
        if len(genders) == 1:
            return genders[0]
        if {"Men", "Women"} <= set(genders):
            return "Unisex"
        return ""

    # -- look categories -----------------------------------------------------------------------
    def _look_categories_of(self, products) -> dict:
        """``{pk: (look category, problems)}``: product class first, then the deepest mapped category."""
        Category = _model("catalogue.Category")
        categories_of = {}
        paths = set()
        for product in products:
            owner = product.parent if (product.parent_id is not None and product.parent is not None) else product
            categories = list(owner.categories.all()) if owner.pk is not None else []
            categories_of[product.pk] = categories
            for category in categories:
                steps = len(category.path) // Category.steplen
                paths.update(category.path[:Category.steplen * depth] for depth in range(1, steps + 1))
        nodes = {node.path: node for node in Category._default_manager.filter(path__in=paths)} if paths else {}

        resolved = {}
        for product in products:
            product_class = product.get_product_class()
            if product_class is not None:
                for name in (product_class.name, product_class.slug):
                    if _key(name) in self.look_categories:
                        resolved[product.pk] = (self.look_categories[_key(name)], ())
                        break
            if product.pk in resolved:
                continue
            hits = [hit for hit in (self._category_hit(category, nodes, Category.steplen)
                                    for category in categories_of.get(product.pk, [])) if hit]
            if not hits:
                names = [f"product class {product_class.name!r}"] if product_class is not None else []
                names += [f"category {category.name!r}" for category in categories_of.get(product.pk, [])]
                resolved[product.pk] = ("", (f"no look category for {', '.join(names) or 'it'} "
                                             f"(ADAPTER_OPTIONS['look_categories'])",))
                continue
            deepest = max(depth for depth, _ in hits)
            found = {look for depth, look in hits if depth == deepest}
            if len(found) == 1:
                resolved[product.pk] = (found.pop(), ())
            else:
                resolved[product.pk] = ("", (f"its categories map to several look categories "
                                             f"({', '.join(sorted(found))})",))
        return resolved

    def _category_hit(self, category, nodes, steplen):
        """``(depth, look category)`` of the nearest mapped node from ``category`` up to its root, or None."""
        chain = [nodes.get(category.path[:steplen * depth]) for depth in range(1, len(category.path) // steplen + 1)]
        if any(node is None for node in chain):
            chain = list(category.get_ancestors()) + [category]
        for depth in range(len(chain), 0, -1):
            node = chain[depth - 1]
            keys = (
                "/".join(item.slug for item in chain[:depth]),
                " > ".join(item.name for item in chain[:depth]),
                node.slug,
                node.name,
            )
            for key in keys:
                if _key(key) in self.look_categories:
                    return depth, self.look_categories[_key(key)]
        return None

    # -- lookups -------------------------------------------------------------------------------
    def products_by_pk(self, pks):
        products = self.get_product_model()._default_manager.filter(pk__in=list(pks)).select_related(
            "product_class", "parent")
        return {product.pk: product for product in products}

    def visible_products(self, request=None):
        """Public products (a child only when its parent is public too), as Oscar's product page shows them."""
        return self.get_product_model()._default_manager.filter(
            Q(parent__isnull=True) | Q(parent__is_public=True), is_public=True)

    # -- images --------------------------------------------------------------------------------
    def product_of(self, image):
        return image.product

    def read_image(self, image) -> bytes:
        name = image.original.name if image.original else ""
        if not name:
            raise FileNotFoundError(f"product image {image.pk} has no file")
        with image.original.storage.open(name, "rb") as handle:
            return handle.read()

    def images_of(self, product) -> list:
        """The product's own images, by display order (the primary image, display order 0, first)."""
        if product.pk is None:
            return []
        return sorted(product.images.all(), key=lambda image: (image.display_order, image.pk))

    def image_order(self, image):
        """``images_of``'s order (display order, the primary image first), without a query."""
        return (image.display_order, image.pk)

    def image_facts(self, image) -> ImageFacts:
        name = image.original.name if image.original else ""
        version = name
        url = ""
        if name:
            url = image.original.url
            storage = image.original.storage
            if isinstance(storage, FileSystemStorage):  # cheap on local disk: a replaced-in-place file shows
                try:
                    version = f"{name}:{storage.size(name)}"
                except OSError:
                    pass
        return ImageFacts(pk=image.pk, product_pk=image.product_id, url=url, version=version, name=name)

    # -- integration ---------------------------------------------------------------------------
    def connect(self):
        """Connect the receivers listed in the module docstring (idempotent: fixed ``dispatch_uid``)."""
        image = _model("catalogue.ProductImage")
        product = _model("catalogue.Product")
        uid = "recommender.adapters.oscar."
        post_init.connect(_remember_image, sender=image, dispatch_uid=uid + "image_init", weak=False)
        post_save.connect(_image_saved, sender=image, dispatch_uid=uid + "image_saved", weak=False)
        post_delete.connect(_image_deleted, sender=image, dispatch_uid=uid + "image_deleted", weak=False)
        post_save.connect(_product_saved, sender=product, dispatch_uid=uid + "product_saved", weak=False)
        post_delete.connect(_product_deleted, sender=product, dispatch_uid=uid + "product_deleted", weak=False)
        for name in ("partner.StockRecord", "catalogue.ProductAttributeValue", "catalogue.ProductCategory"):
            model = _model(name)
            post_save.connect(_product_part_changed, sender=model, dispatch_uid=f"{uid}{name}.saved", weak=False)
            post_delete.connect(_product_part_changed, sender=model, dispatch_uid=f"{uid}{name}.deleted",
                                weak=False)
        m2m_changed.connect(_categories_changed, sender=product.categories.through,
                            dispatch_uid=uid + "categories_m2m", weak=False)
        for name in ("catalogue.Category", "catalogue.ProductClass"):
            post_save.connect(_grouping_saved, sender=_model(name), dispatch_uid=f"{uid}{name}.saved", weak=False)


# ------------------------------------------------------------------------------------------------
# Receivers: collect what changed during a transaction, tell recommender.hooks once after it commits.

class _Batch:
    """What one transaction changed; ``flush`` runs once, after the commit."""

    def __init__(self, using):
        self.using = using
        self.images_changed = {}
        self.images_removed = {}
        self.products_changed = {}
        self.products_removed = {}
        self.relatives = {}  # products whose facts follow a changed one (parent, children, grouping)
        self.flushed = False
        self.callback = self.flush  # one bound method object, found again in ``run_on_commit``

    def flush(self):
        self.flushed = True
        from recommender import hooks

        Product = _model("catalogue.Product")
        ProductImage = _model("catalogue.ProductImage")
        for image_id in self.images_removed:
            _call(hooks.image_removed, image_id)
        removed = set(self.products_removed)
        for product_id in removed:
            _call(hooks.product_removed, product_id)
        changed = [pk for pk in self.products_changed if pk not in removed]
        relatives = [pk for pk in self.relatives if pk not in removed and pk not in self.products_changed]
        if changed or relatives:
            changed += _relatives_with_analyses(changed, relatives)
            products = Product._default_manager.in_bulk(changed)
            for product_id in changed:
                if product_id in products:
                    _call(hooks.product_changed, products[product_id])
                else:  # deleted since (by another transaction)
                    _call(hooks.product_removed, product_id)
        wanted = [pk for pk in self.images_changed if pk not in self.images_removed]
        if wanted:
            images = ProductImage._default_manager.select_related("product").in_bulk(wanted)
            for image_id in wanted:
                if image_id in images:
                    _call(hooks.image_changed, images[image_id])


def _call(hook, argument):
    try:
        hook(argument)
    except Exception:  # one failing hook must not hide the others, nor fail the shop's commit
        logger.exception("recommender.hooks.%s(%s) failed", hook.__name__, getattr(argument, "pk", argument))


def _relatives_with_analyses(changed, relatives):
    """Parents and children of ``changed`` products, plus ``relatives``, that have analysed images."""
    from recommender.models import ImageAnalysis

    Product = _model("catalogue.Product")
    family = set(relatives)
    if changed:
        rows = Product._default_manager.filter(Q(pk__in=changed) | Q(parent_id__in=changed)).values_list(
            "pk", "parent_id")
        for pk, parent_id in rows:
            family.add(pk)
            if parent_id is not None:
                family.add(parent_id)
    family -= set(changed)
    if not family:
        return []
    return sorted(set(ImageAnalysis.objects.filter(product_id__in=family).values_list("product_id", flat=True)))


_local = threading.local()


def _batch(using):
    """The current transaction's batch on ``using`` (a new one when the last was flushed or rolled back)."""
    batches = getattr(_local, "batches", None)
    if batches is None:
        batches = _local.batches = {}
    batch = batches.get(using)
    connection = connections[using]
    pending = batch is not None and not batch.flushed and any(
        entry[1] is batch.callback for entry in connection.run_on_commit)
    if not pending:
        batch = batches[using] = _Batch(using)
        transaction.on_commit(batch.callback, using=using)
    return batch


def _schedule(using, kind, pk):
    if pk is None:
        return
    using = using or DEFAULT_DB_ALIAS
    if not connections[using].in_atomic_block:  # autocommit: the change is committed already, tell it now
        batch = _Batch(using)
        getattr(batch, kind)[pk] = True
        batch.flush()
        return
    getattr(_batch(using), kind)[pk] = True


def _image_file(instance):
    value = instance.__dict__.get("original")
    if value is None:
        return None
    return getattr(value, "name", value) or ""


def _remember_image(sender, instance, **kwargs):
    instance.__dict__["_btl_seen"] = (_image_file(instance), instance.__dict__.get("display_order"))


def _image_saved(sender, instance, created, raw=False, using=None, update_fields=None, **kwargs):
    if raw:
        return
    name, order = _image_file(instance), instance.__dict__.get("display_order")
    seen_name, seen_order = instance.__dict__.get("_btl_seen", (None, None))
    instance.__dict__["_btl_seen"] = (name, order)
    if update_fields is not None and "original" not in update_fields:
        file_changed = False
    else:
        file_changed = created or seen_name is None or seen_name != name
    if file_changed:
        _schedule(using, "images_changed", instance.pk)
    if created or file_changed or seen_order != order:  # the product's card picture may have changed
        _schedule(using, "products_changed", instance.product_id)


def _image_deleted(sender, instance, using=None, **kwargs):
    _schedule(using, "images_removed", instance.pk)
    _schedule(using, "products_changed", instance.product_id)


def _product_saved(sender, instance, raw=False, using=None, **kwargs):
    if not raw:
        _schedule(using, "products_changed", instance.pk)


def _product_deleted(sender, instance, using=None, **kwargs):
    _schedule(using, "products_removed", instance.pk)
    if instance.parent_id is not None:
        _schedule(using, "products_changed", instance.parent_id)


def _product_part_changed(sender, instance, raw=False, using=None, **kwargs):
    if not raw:
        _schedule(using, "products_changed", getattr(instance, "product_id", None))


def _categories_changed(sender, instance, action, reverse, pk_set, using=None, **kwargs):
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    if not reverse:
        _schedule(using, "products_changed", instance.pk)
    elif action == "pre_clear":
        for pk in instance.product_set.values_list("pk", flat=True):
            _schedule(using, "products_changed", pk)
    else:
        for pk in pk_set or ():
            _schedule(using, "products_changed", pk)


def _grouping_saved(sender, instance, created, raw=False, using=None, **kwargs):
    """A renamed or moved category or product class: its analysed products are described again."""
    if raw or created:
        return
    from recommender.models import ImageAnalysis

    Product = _model("catalogue.Product")
    if sender._meta.model_name == "category":
        products = Product._default_manager.filter(categories__path__startswith=instance.path)
        products = Product._default_manager.filter(Q(pk__in=products.values("pk")) | Q(parent__in=products.values("pk")))
    else:
        products = Product._default_manager.filter(Q(product_class=instance) | Q(parent__product_class=instance))
    analysed = ImageAnalysis.objects.filter(product_id__in=products.values("pk")).values_list("product_id", flat=True)
    for pk in set(analysed):
        _schedule(using, "relatives", pk)
