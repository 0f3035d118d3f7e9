"""The demo shop's product adapter: how ``catalog`` describes its products to the recommender.

Configured in ``shop/settings.py``::

    BUY_THE_LOOK = {"PRODUCT_ADAPTER": "catalog.adapter.CatalogAdapter"}

It is also the worked example of an adapter for a shop with its own product model: plain model fields map
one to one onto ``ProductFacts``. Outfits (whole looks sold as a product) have no look category of their
own: they are never recommended, they only get a widget.
"""
from recommender.adapters import ImageFacts, ProductAdapter, ProductFacts


class CatalogAdapter(ProductAdapter):
    product_model = "catalog.Product"
    image_model = "catalog.ProductImage"
    admin_search_fields = ("product__sku", "product__name")

    def _ordered_images(self):
        from catalog.models import ProductImage

        return ProductImage.objects.order_by("-is_primary", "position", "id")

    # -- products ------------------------------------------------------------------------------
    def describe(self, product):
        image = product.primary_image
        return ProductFacts(
            pk=product.pk,
            name=product.name,
            url=product.get_absolute_url(),
            gender=product.gender or "",
            look_category="" if product.is_outfit else (product.look_category or ""),
            article_type=product.article_type or "",
            colours=self.clean_colours(product.base_colour),
            price=product.price,
            currency="EUR",
            is_available=product.is_active,
            reference=product.sku,
            image_url=image.file.url if image else "",
            image_width=image.width if image else None,
            image_height=image.height if image else None,
            problems=() if (product.gender or product.is_outfit) else ("no gender",),
        )

    def products_by_pk(self, pks):
        products = self.get_product_model().objects.filter(pk__in=pks).with_card_image()  # one query
        return {product.pk: product for product in products}

    def visible_products(self, request=None):
        return self.get_product_model().objects.filter(is_active=True)

    # -- images --------------------------------------------------------------------------------
    def product_of(self, image):
        return image.product

    def read_image(self, image):
        return image.read_bytes()

    def images_of(self, product):
        return list(self._ordered_images().filter(product_id=product.pk))

    def image_order(self, image):
        """``images_of``'s order (primary first, then position), without a query."""
        return (not image.is_primary, image.position, image.pk)

    def image_facts(self, image):
        return ImageFacts(
            pk=image.pk, product_pk=image.product_id, url=image.file.url if image.file else "",
            width=image.width, height=image.height, version=image.sha256 or image.file.name,
            name=image.file.name,
        )

    # -- integration ---------------------------------------------------------------------------
    def connect(self):
        """catalog announces new/replaced images and changed products after commit (``catalog.signals``)."""
        from catalog.signals import product_changed, product_image_changed, product_image_deleted
        from recommender import hooks

        product_image_changed.connect(
            lambda sender, image, **kwargs: hooks.image_changed(image),
            dispatch_uid="catalog.adapter.image_changed", weak=False,
        )
        product_image_deleted.connect(
            lambda sender, image, **kwargs: hooks.image_removed(image),
            dispatch_uid="catalog.adapter.image_deleted", weak=False,
        )
        product_changed.connect(
            lambda sender, product, **kwargs: hooks.product_changed(product),
            dispatch_uid="catalog.adapter.product_changed", weak=False,
        )
