"""What the recommender stores: one analysis per product image, and the articles found in it.

``DetectedArticle`` rows carry copies of the product fields the nearest-neighbour query filters on
(gender, colour, price, active flag) so that the query touches one table and one HNSW index; they are kept
in step by ``recommender.signals`` whenever catalog announces a changed product.
"""
from django.db import models
from django.db.models import Q
from pgvector.django import HnswIndex, VectorField

from catalog.taxonomy import LOOK_CATEGORIES, LOOK_CATEGORY_CHOICES

from .conf import EMBEDDING_DIM, settings


class ImageAnalysis(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    class GenderSource(models.TextChoices):
        PRODUCT = "product", "Product data"
        PREDICTED = "predicted", "Predicted"
        NONE = "", "None"

    image = models.OneToOneField(
        settings.PRODUCT_IMAGE_MODEL, related_name="analysis", on_delete=models.CASCADE
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True, help_text="Why the last analysis failed, in words.")
    is_full_shot = models.BooleanField("full shot", default=False)
    pose_score = models.FloatField(null=True, blank=True)
    gender = models.CharField(max_length=10, blank=True)
    gender_source = models.CharField(max_length=10, choices=GenderSource.choices, blank=True)
    gender_confidence = models.FloatField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="Milliseconds per pipeline stage.")
    model_versions = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "image analysis"
        verbose_name_plural = "image analyses"
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["status", "is_full_shot"], name="recommender_status_idx")]

    def __str__(self):
        return f"Analysis of image {self.image_id} ({self.status})"

    @property
    def total_ms(self):
        total = (self.timings or {}).get("total")
        if total is None and self.timings:
            total = sum(value for value in self.timings.values() if isinstance(value, (int, float)))
        return total


class DetectedArticle(models.Model):
    analysis = models.ForeignKey(ImageAnalysis, related_name="articles", on_delete=models.CASCADE)
    product = models.ForeignKey(
        settings.PRODUCT_MODEL, related_name="detected_articles", on_delete=models.CASCADE
    )
    category = models.CharField("look category", max_length=16, choices=LOOK_CATEGORY_CHOICES)
    x1 = models.FloatField()
    y1 = models.FloatField()
    x2 = models.FloatField()
    y2 = models.FloatField()
    confidence = models.FloatField()
    # Copies of product fields, for the nearest-neighbour filter (kept in step by recommender.signals).
    gender = models.CharField(max_length=10, blank=True, help_text="The product's gender, else the predicted one.")
    base_colour = models.CharField(max_length=32, blank=True, help_text="The product's colour, lower case.")
    price = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    is_active = models.BooleanField(default=True)
    is_inventory = models.BooleanField(
        default=False,
        help_text="The product's own article: what makes the product findable as a recommendation.",
    )
    is_whole_image = models.BooleanField(
        default=False, help_text="Embedding of the whole image (no article of the product's category was detected)."
    )
    embedding = VectorField(dimensions=EMBEDDING_DIM, editable=False)
    model_version = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["analysis", "-confidence", "id"]
        indexes = [
            # Approximate nearest neighbours among inventory articles only (the query's WHERE implies it).
            HnswIndex(
                name="recommender_inventory_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
                condition=Q(is_inventory=True, is_active=True),
            ),
            # One graph per look category: the category filter costs nothing and the iterative scan only
            # has gender/colour/price left to skip (2-3x faster at 100k articles than the shared graph,
            # which stays for searches by photo without a category).
            *[
                HnswIndex(
                    name=f"recommender_hnsw_{category}",
                    fields=["embedding"],
                    m=16,
                    ef_construction=64,
                    opclasses=["vector_cosine_ops"],
                    condition=Q(is_inventory=True, is_active=True, category=category),
                )
                for category in LOOK_CATEGORIES
            ],
            # Exact search when a filter is very selective, and the filter columns.
            models.Index(
                fields=["category", "gender", "base_colour"],
                name="recommender_inventory_filter",
                condition=Q(is_inventory=True, is_active=True),
            ),
            models.Index(fields=["price"], name="recommender_article_price"),
            models.Index(fields=["product", "is_inventory"], name="recommender_article_product"),
        ]

    def __str__(self):
        return f"{self.get_category_display()} in image {self.analysis.image_id if self.analysis_id else '?'}"

    @property
    def box(self):
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def label(self):
        return settings.label(self.category)

    def box_percent(self):
        """Left, top, width, height in percent of the image (for CSS overlays)."""
        return {
            "left": round(self.x1 * 100, 2),
            "top": round(self.y1 * 100, 2),
            "width": round((self.x2 - self.x1) * 100, 2),
            "height": round((self.y2 - self.y1) * 100, 2),
        }
