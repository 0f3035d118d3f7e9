"""Admin of the recommender: image analyses (status filter, boxes drawn, "re-analyse" action).

For the shop's own admin, opt-in mixins (the recommender never re-registers another app's admin)::

    from recommender.admin import InlineAnalysisMixin, ProductImageAnalysisMixin

    class ProductImageAdmin(ProductImageAnalysisMixin, admin.ModelAdmin): ...   # status, boxes, gender, timings
    class ProductImageInline(InlineAnalysisMixin, admin.TabularInline): ...     # an "analysis" column

``ProductImageAnalysisMixin`` also offers the action ``"reanalyse_images"`` (add it to ``actions``).

The embedding column never appears in a form (``editable=False`` and excluded here): a 256-float text
field is useless to edit and slow to render.
"""
from django.contrib import admin, messages
from django.contrib.admin.views.main import ERROR_FLAG
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from .conf import settings
from .models import DetectedArticle, ImageAnalysis

STATUS_COLOURS = {"queued": "#868e96", "running": "#1c7ed6", "done": "#2f9e44", "failed": "#e03131", "skipped": "#f08c00"}


def status_badge(status):
    if not status:
        return format_html('<span style="color:#868e96">not analysed</span>')
    return format_html(
        '<span style="display:inline-block;padding:1px 8px;border-radius:9px;color:#fff;background:{}">{}</span>',
        STATUS_COLOURS.get(status, "#868e96"), status,
    )


def overlay_html(image, analysis):
    """The image (an instance of the shop's image model) with the analysis' boxes drawn over it."""
    articles = list(analysis.articles.all()) if analysis else []
    facts = settings.adapter.image_facts(image)
    return mark_safe(render_to_string("recommender/admin/overlay.html", {"image": facts, "articles": articles}))


def timings_html(analysis):
    if not analysis or not analysis.timings:
        return "—"
    cells = "".join(
        format_html("<tr><td>{}</td><td style='text-align:right'>{} ms</td></tr>", name, f"{value:.0f}")
        for name, value in analysis.timings.items()
    )
    return mark_safe(f"<table>{cells}</table>")


def gender_text(analysis):
    if not analysis or not analysis.gender:
        return "—"
    text = analysis.gender
    if analysis.gender_source == "predicted":
        confidence = f", {analysis.gender_confidence:.2f}" if analysis.gender_confidence is not None else ""
        text += f" (predicted{confidence})"
    elif analysis.gender_source:
        text += f" (from {analysis.get_gender_source_display().lower()})"
    return text


#: Without a broker an admin action analyses in the request; beyond this many images it only queues them.
EAGER_ACTION_LIMIT = 10


def queue_again(image_ids):
    """Queue (or, without a broker, run) new analyses; returns how many were sent."""
    from .analysis import mark_queued
    from .hooks import is_eager, queue_analysis

    defer = is_eager() and len(image_ids) > EAGER_ACTION_LIMIT
    sent = 0
    for image_id in image_ids:
        mark_queued(image_id)
        if not defer:
            sent += bool(queue_analysis(image_id))
    return sent


def report_queued(model_admin, request, total, sent):
    if sent == total:
        model_admin.message_user(request, f"{sent} image(s) sent for analysis.", messages.SUCCESS)
    else:
        model_admin.message_user(
            request,
            f"{total} image(s) marked queued; {total - sent} wait for a worker or for "
            f"`manage.py analyse --pending`.", messages.WARNING,
        )


class DetectedArticleInline(admin.TabularInline):
    model = DetectedArticle
    fields = ["category", "confidence", "x1", "y1", "x2", "y2", "gender", "base_colour", "is_inventory",
              "is_whole_image", "model_version"]
    readonly_fields = fields
    exclude = ["embedding"]
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ImageAnalysis)
class ImageAnalysisAdmin(admin.ModelAdmin):
    list_display = ["image_thumb", "product_link", "status_display", "is_full_shot", "gender_display",
                    "article_count", "total_time", "attempts", "finished_at"]
    list_filter = ["status", "is_full_shot", "gender_source", "gender"]
    list_select_related = ["image", "product"]
    actions = ["reanalyse"]
    inlines = [DetectedArticleInline]
    readonly_fields = ["image_link", "status_display", "error", "overlay", "is_full_shot", "pose_score",
                       "gender_display", "timings_display", "model_versions", "attempts", "started_at",
                       "finished_at", "created_at", "updated_at"]
    fields = readonly_fields
    date_hierarchy = "updated_at"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_articles=Count("articles"))

    def get_search_fields(self, request):
        return [*settings.adapter.admin_search_fields, "error"]

    def has_add_permission(self, request):
        return False

    def changelist_view(self, request, extra_context=None):
        # Django's date hierarchy turns ?updated_at__year=99999999999999999999 into an OverflowError (500):
        # refuse such values the way the admin refuses any bad lookup (its "?e=1" page).
        for part in ("year", "month", "day"):
            value = request.GET.get(f"{self.date_hierarchy}__{part}")
            if value is not None and not (value.isdigit() and len(value) <= 4):
                return HttpResponseRedirect(f"{request.path}?{ERROR_FLAG}=1")
        return super().changelist_view(request, extra_context)

    @admin.display(description="image")
    def image_thumb(self, obj):
        url = settings.adapter.image_facts(obj.image).url
        return format_html('<img src="{}" alt="" style="height:56px;width:auto;border-radius:4px">', url)

    @admin.display(description="product", ordering="product")
    def product_link(self, obj):
        product = obj.product
        if product is None:
            return "—"
        meta = product._meta
        try:
            url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[product.pk])
        except Exception:
            return str(product)
        return format_html('<a href="{}">{}</a>', url, product)

    @admin.display(description="image")
    def image_link(self, obj):
        meta = obj.image._meta
        try:
            url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.image_id])
        except Exception:
            return str(obj.image)
        return format_html('<a href="{}">{}</a>', url, obj.image)

    @admin.display(description="status", ordering="status")
    def status_display(self, obj):
        return status_badge(obj.status)

    @admin.display(description="gender")
    def gender_display(self, obj):
        return gender_text(obj)

    @admin.display(description="articles", ordering="_articles")
    def article_count(self, obj):
        return getattr(obj, "_articles", None)

    @admin.display(description="time")
    def total_time(self, obj):
        return f"{obj.total_ms:.0f} ms" if obj.total_ms is not None else "—"

    @admin.display(description="photo and boxes")
    def overlay(self, obj):
        return overlay_html(obj.image, obj)

    @admin.display(description="timings")
    def timings_display(self, obj):
        return timings_html(obj)

    @admin.action(description="Re-analyse the selected images")
    def reanalyse(self, request, queryset):
        ids = list(queryset.values_list("image_id", flat=True))
        report_queued(self, request, len(ids), queue_again(ids))


class AnalysisStatusFilter(admin.SimpleListFilter):
    title = "analysis status"
    parameter_name = "analysis_status"

    def lookups(self, request, model_admin):
        return [("none", "Not analysed"), *ImageAnalysis.Status.choices]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "none":
            return queryset.filter(analysis__isnull=True)
        if value:
            return queryset.filter(analysis__status=value)
        return queryset


class ProductImageAnalysisMixin:
    """Adds the look analysis to a product image admin (the catalogue's, when it registered one)."""

    analysis_fields = ["analysis_status", "analysis_overlay", "analysis_gender", "analysis_timings", "analysis_error"]

    def _analysis(self, obj):
        try:
            return obj.analysis
        except ImageAnalysis.DoesNotExist:
            return None

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("analysis")

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), *self.analysis_fields]

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        return fields + [name for name in self.analysis_fields if name not in fields]

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (title, {**options, "fields": [f for f in options.get("fields", ()) if f not in self.analysis_fields]})
            for title, options in super().get_fieldsets(request, obj)
        ]
        if obj is not None and obj.pk:
            fieldsets.append(("Look analysis", {"fields": self.analysis_fields}))
        return fieldsets

    def get_list_display(self, request):
        return [*super().get_list_display(request), "analysis_status"]

    def get_list_filter(self, request):
        return [*super().get_list_filter(request), AnalysisStatusFilter]

    @admin.display(description="analysis")
    def analysis_status(self, obj):
        return status_badge(getattr(self._analysis(obj), "status", None))

    @admin.display(description="photo and boxes")
    def analysis_overlay(self, obj):
        if obj is None or not obj.pk:
            return "—"
        return overlay_html(obj, self._analysis(obj))

    @admin.display(description="gender")
    def analysis_gender(self, obj):
        return gender_text(self._analysis(obj))

    @admin.display(description="timings")
    def analysis_timings(self, obj):
        return timings_html(self._analysis(obj))

    @admin.display(description="analysis error")
    def analysis_error(self, obj):
        analysis = self._analysis(obj)
        return (analysis.error if analysis else "") or "—"

    @admin.action(description="Re-analyse the selected images")
    def reanalyse_images(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        report_queued(self, request, len(ids), queue_again(ids))


class InlineAnalysisMixin:
    """Adds an "analysis" column (status badge linking to the analysis) to a product image inline."""

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("analysis")

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        return fields if "analysis_summary" in fields else fields + ["analysis_summary"]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "analysis_summary"]

    @admin.display(description="look analysis")
    def analysis_summary(self, image):
        if image is None or not image.pk:
            return "—"
        try:
            analysis = image.analysis
        except ImageAnalysis.DoesNotExist:
            return status_badge(None)
        url = reverse("admin:recommender_imageanalysis_change", args=[analysis.pk])
        details = ""
        if analysis.status == ImageAnalysis.Status.DONE:
            details = f" {'full shot' if analysis.is_full_shot else 'close-up'}, {analysis.articles.count()} article(s)"
        elif analysis.status == ImageAnalysis.Status.FAILED:
            details = f" {analysis.error[:80]}"
        return format_html('<a href="{}">{}</a>{}', url, status_badge(analysis.status), details)
