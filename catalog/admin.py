"""Admin of the catalogue: products (thumbnail, filters, search, image inlines, bulk (de)activation) and
product images.

The look analysis appears through the recommender's opt-in admin mixins (``recommender.admin``): the image
inline gets an "analysis" column, the image admin the status, the photo with its boxes, gender and timings.
"""
from django.contrib import admin, messages
from django.db import models
from django.db.models import Count
from django.utils.html import format_html
from django.utils.translation import ngettext

from recommender.admin import InlineAnalysisMixin, ProductImageAnalysisMixin

from .models import Product, ProductImage
from .validation import CheckedImageFormField

THUMBNAIL_SIZE = 64
#: Image uploads in the admin are checked by ``catalog.validation`` first: a refusal names its problem.
IMAGE_FIELD_OVERRIDES = {models.ImageField: {"form_class": CheckedImageFormField}}
PREVIEW_SIZE = 160


def image_tag(image, size):
    if image is None or not image.file:
        return "—"
    return format_html(
        '<img src="{}" alt="" loading="lazy" style="width:{}px;height:{}px;object-fit:contain;'
        'background:#f4f4f4;border-radius:4px">', image.file.url, size, size,
    )


class ProductImageInline(InlineAnalysisMixin, admin.TabularInline):
    model = ProductImage
    extra = 1
    formfield_overrides = IMAGE_FIELD_OVERRIDES
    fields = ["preview", "file", "position", "is_primary", "width", "height", "short_sha256"]
    readonly_fields = ["preview", "width", "height", "short_sha256"]
    ordering = ["-is_primary", "position", "id"]

    @admin.display(description="Preview")
    def preview(self, image):
        return image_tag(image if image.pk else None, PREVIEW_SIZE // 2)

    @admin.display(description="SHA-256")
    def short_sha256(self, image):
        if not image.sha256:
            return "—"
        return format_html('<code title="{}">{}…</code>', image.sha256, image.sha256[:12])


class GenderListFilter(admin.SimpleListFilter):
    """Gender, with "Unknown" for products that have none (look photos)."""

    title = "gender"
    parameter_name = "gender"

    def lookups(self, request, model_admin):
        from .models import Gender

        return [(choice.value or "unknown", choice.label) for choice in Gender]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(gender="" if value == "unknown" else value)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["thumbnail", "name", "sku", "gender", "look_category", "article_type", "base_colour", "price",
                    "image_count", "is_active"]
    list_display_links = ["thumbnail", "name"]
    list_filter = [GenderListFilter, "look_category", "is_active", "master_category"]
    search_fields = ["name", "sku"]
    list_per_page = 50
    actions = ["activate", "deactivate"]
    readonly_fields = ["look_category", "slug", "created_at", "updated_at", "page_link"]
    inlines = [ProductImageInline]
    fieldsets = [
        (None, {"fields": ["sku", "name", "slug", "page_link", "description", "price", "is_active"]}),
        ("Catalogue", {"fields": ["gender", "master_category", "sub_category", "article_type", "look_category",
                                  "base_colour", "season", "usage", "year"]}),
        ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).with_primary_image().annotate(image_total=Count("images"))

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        form.instance.settle_primary_image()

    @admin.display(description="")
    def thumbnail(self, product):
        return image_tag(product.primary_image, THUMBNAIL_SIZE)

    @admin.display(description="images", ordering="image_total")
    def image_count(self, product):
        return product.image_total

    @admin.display(description="Page in the shop")
    def page_link(self, product):
        if not product.pk:
            return "—"
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', product.get_absolute_url(),
                           product.get_absolute_url())

    @admin.action(description="Activate the selected products", permissions=["change"])
    def activate(self, request, queryset):
        self._set_active(request, queryset, True)

    @admin.action(description="Deactivate the selected products", permissions=["change"])
    def deactivate(self, request, queryset):
        self._set_active(request, queryset, False)

    def _set_active(self, request, queryset, active):
        # Saved one by one (not queryset.update) so that product_changed reaches the recommender.
        changed = 0
        for product in queryset.exclude(is_active=active):
            product.is_active = active
            product.save(update_fields=["is_active", "updated_at"])
            changed += 1
        state = "activated" if active else "deactivated"
        self.message_user(request, ngettext("%d product %s.", "%d products %s.", changed) % (changed, state),
                          messages.SUCCESS)


@admin.register(ProductImage)
class ProductImageAdmin(ProductImageAnalysisMixin, admin.ModelAdmin):
    list_display = ["thumbnail", "product", "position", "is_primary", "width", "height", "created_at"]
    list_display_links = ["thumbnail", "product"]
    list_filter = ["is_primary", "product__look_category", "product__gender"]
    search_fields = ["product__name", "product__sku", "sha256"]
    list_select_related = ["product"]
    autocomplete_fields = ["product"]
    formfield_overrides = IMAGE_FIELD_OVERRIDES
    readonly_fields = ["preview", "width", "height", "sha256", "created_at", "updated_at"]
    fields = ["product", "file", "preview", "position", "is_primary", "width", "height", "sha256",
              "created_at", "updated_at"]
    actions = ["reanalyse_images"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        obj.product.settle_primary_image(prefer=obj)

    @admin.display(description="")
    def thumbnail(self, image):
        return image_tag(image, THUMBNAIL_SIZE)

    @admin.display(description="Preview")
    def preview(self, image):
        return image_tag(image if image.pk else None, PREVIEW_SIZE * 2)
