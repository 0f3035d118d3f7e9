"""What the recommender stores: one analysis per product image, and the articles found in it.

The tables point at the shop's own product and image models — the ``product_model``/``image_model`` of
the adapter named in ``BUY_THE_LOOK["PRODUCT_ADAPTER"]`` — with ordinary foreign keys, the way apps point at
``AUTH_USER_MODEL``: deleting an image or a product deletes its analyses and vectors in the same
transaction. The labels are read when ``migrate`` first creates these tables; a shop that changes them
afterwards starts the recommender's tables afresh (``migrate recommender zero``, ``migrate``, ``analyse --all``).

``DetectedArticle`` rows carry copies of the product facts the nearest-neighbour query filters on (gender,
look category, colour, price, availability) so that a look query touches one table and one HNSW index and
never joins the shop's tables; ``recommender.sync`` keeps them in step when the shop calls
``recommender.hooks.product_changed``.
"""
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from pgvector.django import HnswIndex, VectorField

from .conf import COLOUR_DIM, EMBEDDING_DIM, KIND_DIM, settings
from .taxonomy import LOOK_CATEGORIES, LOOK_CATEGORY_CHOICES

#: HNSW build parameters of the article indexes. Part of the schema (the migrations build the indexes with
#: them and ``manage.py reindex --rebuild-index`` rebuilds exactly these definitions): change them with a
#: migration, never in settings. ef_construction 128 (migration 0006; it was 64): at 1M articles recall@10
#: 0.985 -> 0.996-0.998, queries under 0.5 recall 3-4 -> 0-2 of 1,000 (builds vary), look query ~20 % slower,
#: index build 1.7x longer (docs/benchmarks-1m-efc128.md, docs/benchmarks-1m.md).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128

_adapter = settings.adapter_class


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

    image = models.OneToOneField(_adapter.image_model, related_name="analysis", on_delete=models.CASCADE)
    product = models.ForeignKey(
        _adapter.product_model, related_name="look_analyses", on_delete=models.CASCADE, null=True, blank=True,
        help_text="The image's product when it was last queued or analysed.",
    )
    sha256 = models.CharField(max_length=64, blank=True, db_index=True,
                              help_text="Digest of the file content analysed (finds the same photo on other products).")
    image_version = models.CharField(max_length=255, blank=True,
                                     help_text="The adapter's version of the file analysed.")
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
    product = models.ForeignKey(_adapter.product_model, related_name="detected_articles", on_delete=models.CASCADE)
    category = models.CharField("look category", max_length=16, choices=LOOK_CATEGORY_CHOICES)
    x1 = models.FloatField()
    y1 = models.FloatField()
    x2 = models.FloatField()
    y2 = models.FloatField()
    confidence = models.FloatField()
    # Copies of the product's facts, for the nearest-neighbour filter (kept in step by recommender.sync).
    gender = models.CharField(max_length=10, blank=True, help_text="The product's gender, else the predicted one.")
    base_colour = models.CharField(max_length=32, blank=True, help_text="The product's main colour, lower case.")
    article_type = models.CharField(max_length=64, blank=True, help_text="The product's kind of article.")
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    is_active = models.BooleanField("available", default=True, help_text="The product can be bought now.")
    is_inventory = models.BooleanField(
        default=False,
        help_text="The product's own article: what makes the product findable as a recommendation.",
    )
    is_whole_image = models.BooleanField(
        default=False, help_text="Embedding of the whole image (no article of the product's category was detected)."
    )
    embedding = VectorField(dimensions=EMBEDDING_DIM, editable=False)
    # The article's colours as read from its own pixels (ml.colour): what the look query's colour weight
    # compares, whatever the shop's colour field says.
    colour = VectorField(
        dimensions=COLOUR_DIM, null=True, blank=True, editable=False,
        help_text="Colour descriptor: square roots of the probabilities of ml.colour.WORDS (unit length).",
    )
    colour_name = models.CharField(max_length=32, blank=True, default="", db_default="",
                                   help_text="Main colour read from the article's pixels, in the catalogue's words.")
    colours = models.JSONField(default=list, db_default=[], blank=True, editable=False,
                               help_text="Main colours read from the article's pixels: [[name, share], …].")
    # What kind of article its vector shows (ml.kind_head): what the look query's KIND_WEIGHT compares.
    kind = VectorField(
        dimensions=KIND_DIM, null=True, blank=True, editable=False,
        help_text="Kind descriptor: square roots of the probabilities of the kind head's article types (unit length).",
    )
    model_version = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Start of the transaction that wrote or last updated the row (the default, and a trigger of migration 0007 on
    # every UPDATE, however it is made): what a look row's precomputed candidates (``LookCandidates``) are
    # compared with.
    changed_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        ordering = ["analysis", "-confidence", "id"]
        indexes = [
            # Approximate nearest neighbours among inventory articles only (the query's WHERE implies it).
            HnswIndex(
                name="recommender_inventory_hnsw",
                fields=["embedding"],
                m=HNSW_M,
                ef_construction=HNSW_EF_CONSTRUCTION,
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
                    m=HNSW_M,
                    ef_construction=HNSW_EF_CONSTRUCTION,
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
            # The inventory articles of a category changed since a time (what precomputed candidates lack).
            models.Index(fields=["category", "changed_at"], name="recommender_article_changed",
                         condition=Q(is_inventory=True)),
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


class LookCandidates(models.Model):
    """The nearest inventory articles of a look row's article, found ahead of time (``recommender.candidates``).

    ``ids`` holds the ``CANDIDATES_DEPTH`` inventory articles nearest to the row's article among those of its
    look category, compatible gender and embedder that existed when the list was computed; the product page
    ranks them together with the inventory articles of the category changed since ``since`` instead of walking
    the HNSW graph. Deleted with the article by the database (a re-analysis makes new articles).
    """

    # The database deletes a list with its article (ON DELETE CASCADE, migration 0007), so that deleting articles
    # stays one DELETE (Django's own cascade would read every article first).
    article = models.OneToOneField(DetectedArticle, primary_key=True, related_name="look_candidates",
                                   on_delete=models.DO_NOTHING, db_constraint=False)
    ids = ArrayField(models.BigIntegerField(), help_text="Inventory article ids, nearest first.")
    inputs = models.CharField(max_length=300, help_text="The article's category|gender|embedder the list was "
                                                         "computed for (another: the list is not used).")
    since = models.DateTimeField(help_text="Changes made from this time on may be missing from the list.")
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "look row candidates"
        verbose_name_plural = "look row candidates"

    def __str__(self):
        return f"Candidates of article {self.article_id} ({len(self.ids)})"
