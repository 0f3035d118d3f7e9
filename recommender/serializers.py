"""Serializers of the recommender's REST API (the views are in ``recommender.api``)."""
from django.forms import ValidationError as FormValidationError
from rest_framework import serializers

from .conf import settings
from .forms import decode_photo, read_upload
from .models import DetectedArticle, ImageAnalysis
from .taxonomy import GENDERS


class BoxSerializer(serializers.Serializer):
    x1 = serializers.FloatField()
    y1 = serializers.FloatField()
    x2 = serializers.FloatField()
    y2 = serializers.FloatField()


class ArticleSerializer(serializers.ModelSerializer):
    label = serializers.CharField(read_only=True)
    box = serializers.SerializerMethodField()

    class Meta:
        model = DetectedArticle
        fields = ["id", "category", "label", "confidence", "box", "gender", "is_inventory", "is_whole_image",
                  "model_version", "colour_name", "colours"]

    def get_box(self, article) -> dict:
        return {"x1": article.x1, "y1": article.y1, "x2": article.x2, "y2": article.y2}


class ProductCardSerializer(serializers.Serializer):
    """A recommended product, as the shop's adapter describes it (``recommender.looks.Recommendation``)."""

    id = serializers.IntegerField(source="pk")
    reference = serializers.CharField(help_text="The shop's reference (SKU, UPC).")
    name = serializers.CharField()
    url = serializers.SerializerMethodField()
    image = serializers.SerializerMethodField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    currency = serializers.CharField()
    gender = serializers.CharField()
    colour = serializers.CharField(help_text="Main colour, lower case (may be empty).")
    look_category = serializers.CharField()
    article_type = serializers.CharField()
    distance = serializers.FloatField(help_text="Cosine distance to the article (0 = identical).")
    colour_name = serializers.CharField(help_text="Main colour read from the product's photo (may be empty).")
    colour_similarity = serializers.FloatField(
        allow_null=True, help_text="How alike the colours of the product and the article are, 0..1 (null: not compared).")
    colour_match = serializers.ChoiceField(
        choices=["same", "similar", ""],
        help_text='"same": the same main colour as the article; "similar": colour similarity above the shop\'s '
                  'SIMILAR_COLOUR; "" otherwise.')

    def _absolute(self, url):
        request = self.context.get("request")
        return request.build_absolute_uri(url) if (request and url) else url

    def get_url(self, card) -> str:
        return self._absolute(card.url)

    def get_image(self, card) -> str | None:
        return self._absolute(card.image_url) or None


class LookRowSerializer(serializers.Serializer):
    category = serializers.CharField()
    label = serializers.CharField()
    image_id = serializers.SerializerMethodField()
    article = ArticleSerializer()
    boxes = serializers.SerializerMethodField(help_text="Every box of this category in the photo (e.g. both shoes).")
    recommendations = ProductCardSerializer(many=True)

    def get_image_id(self, row) -> int | None:
        return getattr(row.image, "pk", None)

    def get_boxes(self, row) -> list[dict]:
        return [{"x1": a.x1, "y1": a.y1, "x2": a.x2, "y2": a.y2, "confidence": a.confidence} for a in row.articles]


class SearchRowSerializer(LookRowSerializer):
    class SearchArticleSerializer(serializers.Serializer):
        category = serializers.CharField()
        confidence = serializers.FloatField()
        box = serializers.SerializerMethodField()

        def get_box(self, article) -> dict:
            return {"x1": article.x1, "y1": article.y1, "x2": article.x2, "y2": article.y2}

    article = SearchArticleSerializer()


class LookSerializer(serializers.Serializer):
    product = serializers.IntegerField()
    k = serializers.IntegerField()
    rows = LookRowSerializer(many=True)


class AnalysisSerializer(serializers.ModelSerializer):
    image = serializers.IntegerField(source="image_id")
    product = serializers.IntegerField(source="product_id", allow_null=True)
    articles = ArticleSerializer(many=True)

    class Meta:
        model = ImageAnalysis
        fields = ["image", "product", "status", "error", "is_full_shot", "pose_score", "gender", "gender_source",
                  "gender_confidence", "width", "height", "timings", "model_versions", "attempts", "started_at",
                  "finished_at", "updated_at", "articles"]


class SearchRequestSerializer(serializers.Serializer):
    image = serializers.FileField(help_text="The photo (JPEG, PNG, WebP or GIF).")
    gender = serializers.ChoiceField(
        choices=["", *GENDERS], required=False, allow_blank=True,
        help_text="Whose products; empty: predicted from the photo.",
    )
    category = serializers.ChoiceField(choices=[], required=False, allow_blank=True,
                                       help_text="Only this look category.")
    colour = serializers.CharField(required=False, allow_blank=True, help_text="Only these colours, comma separated.")
    exclude_colour = serializers.CharField(required=False, allow_blank=True,
                                           help_text="Not these colours, comma separated.")
    k = serializers.IntegerField(required=False, min_value=1)
    min_price = serializers.DecimalField(max_digits=10, decimal_places=2, required=False, min_value=0)
    max_price = serializers.DecimalField(max_digits=10, decimal_places=2, required=False, min_value=0)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = [""] + list(settings.CATEGORIES)
        self.fields["k"].max_value = settings.MAX_K

    def validate_image(self, upload):
        try:
            self._picture = decode_photo(read_upload(upload), getattr(upload, "name", "photo"))
        except FormValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        return upload


class SearchResponseSerializer(serializers.Serializer):
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    is_full_shot = serializers.BooleanField()
    gender = serializers.CharField(allow_null=True)
    gender_source = serializers.CharField(allow_null=True, help_text='"visitor" (chosen), "predicted" or null.')
    gender_confidence = serializers.FloatField(allow_null=True)
    timings = serializers.DictField(child=serializers.FloatField())
    rows = SearchRowSerializer(many=True)


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
