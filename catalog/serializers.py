"""REST serializers of the catalogue: products and their images."""
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from rest_framework import serializers

from .models import Product, ProductImage, compute_sha256
from .validation import validate_image_upload


def checked_image(upload):
    """Run the shared upload checks; a failure becomes a 400 naming the problem."""
    try:
        validate_image_upload(upload)
    except DjangoValidationError as error:
        raise serializers.ValidationError(error.messages)
    return upload


class ProductImageSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = ProductImage
        fields = ["id", "url", "position", "is_primary", "width", "height", "sha256", "created_at"]
        read_only_fields = fields

    def get_url(self, image) -> str:
        url = image.file.url
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class ProductImageUploadSerializer(serializers.Serializer):
    """``multipart/form-data`` upload of one image to a product."""

    image = serializers.FileField(help_text="JPEG, PNG, WebP or GIF; 32×32 px to 40 megapixels; at most 10 MB.")
    position = serializers.IntegerField(required=False, min_value=0, max_value=32767, default=0)
    is_primary = serializers.BooleanField(required=False, default=False)

    def validate_image(self, upload):
        checked_image(upload)
        product = self.context["product"]
        if product.images.filter(sha256=compute_sha256(upload)).exists():
            raise serializers.ValidationError("This image is already attached to the product.")
        return upload


class ProductSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="The product's page in the shop.")
    primary_image = serializers.SerializerMethodField()
    images = ProductImageSerializer(many=True, read_only=True)
    # A plain string here (not an enum): the recommender's serializers already name the look-category enum.
    look_category = serializers.CharField(
        read_only=True, help_text="Derived from the taxonomy: top, bottom, dress, footwear, bag, or empty.")
    image = serializers.FileField(
        write_only=True, required=False,
        help_text="Optional image (multipart): becomes the product's primary image. "
                  "JPEG, PNG, WebP or GIF; 32×32 px to 40 megapixels; at most 10 MB.",
    )

    class Meta:
        model = Product
        fields = ["id", "sku", "name", "slug", "description", "gender", "master_category", "sub_category",
                  "article_type", "base_colour", "season", "usage", "year", "price", "is_active", "look_category",
                  "url", "primary_image", "images", "image", "created_at", "updated_at"]
        read_only_fields = ["slug", "look_category", "created_at", "updated_at"]
        extra_kwargs = {"price": {"min_value": 0}, "year": {"min_value": 1900, "max_value": 2100}}

    def get_url(self, product) -> str:
        request = self.context.get("request")
        url = product.get_absolute_url()
        return request.build_absolute_uri(url) if request else url

    def get_primary_image(self, product) -> str | None:
        image = product.primary_image
        if image is None:
            return None
        request = self.context.get("request")
        return request.build_absolute_uri(image.file.url) if request else image.file.url

    def validate_image(self, upload):
        checked_image(upload)
        if self.instance is not None and self.instance.images.filter(sha256=compute_sha256(upload)).exists():
            raise serializers.ValidationError("This image is already attached to the product.")
        return upload

    def create(self, validated_data):
        upload = validated_data.pop("image", None)
        product = super().create(validated_data)
        if upload is not None:
            attach_image(product, upload, is_primary=True)
        return product

    def update(self, instance, validated_data):
        upload = validated_data.pop("image", None)
        if "name" in validated_data and validated_data["name"] != instance.name:
            instance.slug = ""  # recomputed from the new name on save
        product = super().update(instance, validated_data)
        if upload is not None:
            attach_image(product, upload, is_primary=True)
        return product


def attach_image(product, upload, *, position=0, is_primary=False):
    """Store an already validated upload as an image of ``product`` (the primary one if asked; ``None``: primary
    when the product has no image yet).

    Uploads to one product are serialised by a lock on its row, so that simultaneous uploads leave exactly one
    primary image and the same photo sent twice at once is refused as a duplicate (400), not by the unique
    constraint (500).
    """
    with transaction.atomic():
        list(type(product).objects.select_for_update().filter(pk=product.pk).values_list("pk", flat=True))
        if product.images.filter(sha256=compute_sha256(upload)).exists():
            raise serializers.ValidationError({"image": ["This image is already attached to the product."]})
        if is_primary is None:
            is_primary = not product.images.exists()
        return _store_image(product, upload, position=position, is_primary=is_primary)


def _store_image(product, upload, *, position, is_primary):
    if is_primary:
        product.images.filter(is_primary=True).update(is_primary=False)
    image = ProductImage(product=product, file=upload, position=position, is_primary=is_primary)
    try:
        image.save()
    except Exception:
        if image.file.name and getattr(image.file, "_committed", False):
            image.file.storage.delete(image.file.name)
        raise
    return image
