import hashlib
import uuid
from decimal import Decimal
from pathlib import PurePath

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models.expressions import RawSQL
from django.urls import reverse
from django.utils.text import slugify

from recommender.taxonomy import LOOK_CATEGORY_CHOICES, look_category_for
from .validation import validate_image_field


class Gender(models.TextChoices):
    MEN = "Men", "Men"
    WOMEN = "Women", "Women"
    UNISEX = "Unisex", "Unisex"
    BOYS = "Boys", "Boys"
    GIRLS = "Girls", "Girls"
    UNKNOWN = "", "Unknown"


OUTFIT_CATEGORY = "Outfit"


#: a product image as a JSON object, and the display order (primary first), for the one-query image readers below
IMAGE_JSON = ("jsonb_build_object('id', id, 'file', file, 'position', position, 'is_primary', is_primary, "
              "'width', width, 'height', height, 'sha256', sha256)")
IMAGE_ORDER = "is_primary DESC, position, id"


class ProductQuerySet(models.QuerySet):
    def active(self):
        return self.filter(is_active=True)

    def with_primary_image(self):
        """Every image of each product, in display order (product pages, the API): one more query."""
        return self.prefetch_related(
            models.Prefetch("images", queryset=ProductImage.objects.order_by("-is_primary", "position", "id"))
        )

    def with_card_image(self):
        """Only the image shown first, read in the same query (``card_image``; cards, lists): ``primary_image``
        uses it when the images are not prefetched."""
        # written out: the equivalent Subquery(JSONObject(...)) costs more to compile than to run
        image, product = ProductImage._meta.db_table, Product._meta.db_table
        return self.annotate(card_image=RawSQL(
            f'SELECT {IMAGE_JSON} FROM "{image}" '
            f'WHERE "{image}".product_id = "{product}".id ORDER BY {IMAGE_ORDER} LIMIT 1',
            [], output_field=models.JSONField()))

    def with_images(self):
        """Every image, in display order, read in the same query (``image_rows``; the product page):
        ``ordered_images`` and ``primary_image`` use it when the images are not prefetched."""
        image, product = ProductImage._meta.db_table, Product._meta.db_table
        return self.annotate(image_rows=RawSQL(
            f'SELECT coalesce(jsonb_agg({IMAGE_JSON} ORDER BY {IMAGE_ORDER}), \'[]\'::jsonb) FROM "{image}" '
            f'WHERE "{image}".product_id = "{product}".id', [], output_field=models.JSONField()))


class Product(models.Model):
    sku = models.CharField("SKU", max_length=64, unique=True)
    name = models.CharField(max_length=255)
    slug = models.SlugField(max_length=255, db_index=True)
    description = models.TextField(blank=True)
    gender = models.CharField(max_length=10, choices=Gender.choices, blank=True, db_index=True)
    master_category = models.CharField(max_length=64, blank=True, db_index=True)
    sub_category = models.CharField(max_length=64, blank=True, db_index=True)
    article_type = models.CharField(max_length=64, blank=True, db_index=True)
    base_colour = models.CharField(max_length=32, blank=True, db_index=True)
    season = models.CharField(max_length=16, blank=True)
    usage = models.CharField(max_length=32, blank=True)
    year = models.PositiveSmallIntegerField(null=True, blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0.00"))
    is_active = models.BooleanField("active", default=True, db_index=True)
    look_category = models.CharField(
        max_length=16, choices=LOOK_CATEGORY_CHOICES, blank=True, db_index=True, editable=False,
        help_text="Derived from sub-category and article type through the look taxonomy.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProductQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            models.Index(fields=["is_active", "look_category", "gender"]),
            # "more like this": the same type and gender, nearest in price (views.more_like_this)
            models.Index(fields=["article_type", "gender", "price"], name="catalog_similar_by_price"),
        ]

    def __str__(self):
        return f"{self.name} ({self.sku})"

    def save(self, *args, **kwargs):
        self.look_category = look_category_for(self.sub_category, self.article_type)
        if not self.slug:
            self.slug = slugify(self.name)[:200] or slugify(self.sku) or "product"
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = set(kwargs["update_fields"]) | {"look_category", "slug"}
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        return reverse("catalog:product-detail", kwargs={"pk": self.pk, "slug": self.slug or "product"})

    @property
    def is_outfit(self):
        return self.master_category == OUTFIT_CATEGORY

    def settle_primary_image(self, prefer=None):
        """Exactly one primary image when the product has images: ``prefer`` (an image just saved as primary),
        else the one marked primary first in display order, else the first image (an image added through the
        admin without ticking "primary")."""
        images = list(self.images.order_by("-is_primary", "position", "id").values_list("pk", "is_primary"))
        if not images:
            return
        keep, marked = images[0]
        if prefer is not None and prefer.is_primary and prefer.product_id == self.pk:
            keep, marked = prefer.pk, True
        self.images.filter(is_primary=True).exclude(pk=keep).update(is_primary=False)
        if not marked:
            self.images.filter(pk=keep).update(is_primary=True)

    @property
    def primary_image(self):
        card_image = getattr(self, "card_image", False)
        if card_image is not False and not self._images_prefetched():
            return ProductImage(product=self, **card_image) if card_image else None  # ``with_card_image``
        images = self.ordered_images
        return images[0] if images else None

    @property
    def ordered_images(self):
        """Every image, primary first, then by position (no query after ``with_images`` or a prefetch)."""
        rows = getattr(self, "image_rows", None)
        if rows is not None and not self._images_prefetched():
            return [ProductImage(product=self, **row) for row in rows]
        return sorted(self.images.all(), key=lambda image: (not image.is_primary, image.position, image.id))

    def _images_prefetched(self):
        return "images" in getattr(self, "_prefetched_objects_cache", {})


def product_image_path(instance, filename):
    """Stored name: never the uploaded name (no path traversal, no clashes)."""
    suffix = PurePath(filename or "").suffix.lower()
    if suffix not in {".jpg", ".jpeg", ".png", ".webp", ".gif"}:
        suffix = ".jpg"
    sku = slugify(instance.product.sku if instance.product_id else "new")[:40] or "product"
    return f"products/{sku}/{uuid.uuid4().hex}{suffix}"


class ProductImage(models.Model):
    product = models.ForeignKey(Product, related_name="images", on_delete=models.CASCADE)
    file = models.ImageField(
        upload_to=product_image_path, width_field="width", height_field="height", max_length=255,
        validators=[validate_image_field],
        help_text="JPEG, PNG, WebP or GIF; at least 32×32 pixels, at most 40 megapixels and 10 MB.",
    )
    position = models.PositiveSmallIntegerField(default=0)
    is_primary = models.BooleanField("primary", default=False)
    width = models.PositiveIntegerField(null=True, blank=True, editable=False)
    height = models.PositiveIntegerField(null=True, blank=True, editable=False)
    sha256 = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["product", "-is_primary", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["product", "sha256"], name="unique_image_per_product",
                                    condition=~models.Q(sha256=""),
                                    violation_error_message="This image is already attached to the product."),
        ]

    def __str__(self):
        return f"Image {self.position} of {self.product.sku}"

    def clean(self):
        super().clean()
        if self.file and not getattr(self.file, "_committed", True) and self.product_id:
            sha256 = compute_sha256(self.file)
            duplicates = ProductImage.objects.filter(product_id=self.product_id, sha256=sha256).exclude(pk=self.pk)
            if duplicates.exists():
                raise ValidationError({"file": "This image is already attached to the product."}, code="duplicate")

    def save(self, *args, **kwargs):
        self._file_changed = False
        if self.file and not getattr(self.file, "_committed", True):
            self.sha256 = compute_sha256(self.file)
            self._file_changed = True
            self.file.name = name_with_real_extension(self.file)
        shown = displayed_size(self.file) if self._file_changed else None
        replaced = ""
        if self._file_changed and self.pk:
            replaced = ProductImage.objects.filter(pk=self.pk).values_list("file", flat=True).first() or ""
        super().save(*args, **kwargs)
        if replaced and replaced != self.file.name and not ProductImage.objects.filter(file=replaced).exists():
            # The file was replaced (admin change form): the old one goes once the change is committed.
            storage = self.file.storage
            transaction.on_commit(lambda: storage.delete(replaced))
        if shown and shown != (self.width, self.height):
            # A photo with an EXIF rotation (phones) is shown and analysed rotated: record the size as shown, so
            # aspect ratios and analysis boxes drawn over it line up.
            self.width, self.height = shown
            ProductImage.objects.filter(pk=self.pk).update(width=self.width, height=self.height)

    def read_bytes(self):
        with self.file.open("rb") as handle:
            return handle.read()


def name_with_real_extension(file):
    """The file's name with the extension of its actual image format (a PNG called photo.jpg → photo.png)."""
    from PIL import Image

    from .validation import EXTENSION_FOR_FORMAT

    name = PurePath(file.name or "image")
    try:
        file.seek(0)
        with_format = Image.open(file).format
    except Exception:
        return str(file.name or name)
    finally:
        file.seek(0)
    extension = EXTENSION_FOR_FORMAT.get(with_format)
    return f"{name.stem}{extension}" if extension else str(file.name)


def displayed_size(file):
    """(width, height) of the image as shown, i.e. after its EXIF orientation; None when unreadable."""
    from PIL import Image

    try:
        file.seek(0)
        image = Image.open(file)
        width, height = image.size
        orientation = image.getexif().get(0x0112)
    except Exception:
        return None
    finally:
        file.seek(0)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def compute_sha256(file):
    digest = hashlib.sha256()
    position = file.tell() if hasattr(file, "tell") else None
    file.seek(0)
    for chunk in iter(lambda: file.read(1 << 20), b""):
        digest.update(chunk)
    file.seek(position or 0)
    return digest.hexdigest()
