"""REST API of the recommender (Django REST framework, documented with drf-spectacular).

- ``GET  /api/products/{id}/look/``      the widget's data (public)
- ``POST /api/search/``                  search by photo (public, throttled: scope "search", size-limited)
- ``GET  /api/images/{id}/analysis/``    an image's analysis: status, boxes, timings (public)
- ``POST /api/images/{id}/analysis/``    analyse it again (staff, session or token)
"""
import logging

from django.apps import apps
from django.forms import ValidationError as FormValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from .conf import settings
from .forms import decode_photo, read_upload
from .models import DetectedArticle, ImageAnalysis
from .services import look_for, search_by_photo

logger = logging.getLogger(__name__)

SEARCH_UNAVAILABLE = "Search by photo is unavailable right now; please try again later."


class SearchRateThrottle(ScopedRateThrottle):
    """The "search" rate (scope ``search``). Its counts live in the cache; when the cache is unreachable the
    search is let through (and logged) rather than failed: the shop stays usable while Redis is down."""

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception as error:  # redis.exceptions.ConnectionError, TimeoutError, …
            logger.warning("search throttle not applied, cache unavailable (%s: %s)", type(error).__name__, error)
            return True


class ReadPublicWriteStaff(permissions.BasePermission):
    """Anyone may read; only staff (session or token) may write."""

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return True
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


# ------------------------------------------------------------------------------------------------
# Serializers


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
                  "model_version"]

    def get_box(self, article) -> dict:
        return {"x1": article.x1, "y1": article.y1, "x2": article.x2, "y2": article.y2}


class ProductCardSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    sku = serializers.CharField()
    name = serializers.CharField()
    url = serializers.SerializerMethodField()
    image = serializers.SerializerMethodField()
    price = serializers.DecimalField(max_digits=10, decimal_places=2)
    gender = serializers.CharField()
    base_colour = serializers.CharField()
    look_category = serializers.CharField()
    distance = serializers.FloatField(help_text="Cosine distance to the article (0 = identical).")

    def _absolute(self, url):
        request = self.context.get("request")
        return request.build_absolute_uri(url) if (request and url) else url

    def get_url(self, product) -> str:
        return self._absolute(product.get_absolute_url())

    def get_image(self, product) -> str | None:
        image = product.primary_image
        return self._absolute(image.file.url) if image else None


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
    product = serializers.IntegerField(source="image.product_id")
    articles = ArticleSerializer(many=True)

    class Meta:
        model = ImageAnalysis
        fields = ["image", "product", "status", "error", "is_full_shot", "pose_score", "gender", "gender_source",
                  "gender_confidence", "width", "height", "timings", "model_versions", "attempts", "started_at",
                  "finished_at", "updated_at", "articles"]


class SearchRequestSerializer(serializers.Serializer):
    image = serializers.FileField(help_text="The photo (JPEG, PNG, WebP or GIF).")
    gender = serializers.ChoiceField(
        choices=["", "Men", "Women", "Boys", "Girls", "Unisex"], required=False, allow_blank=True,
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


# ------------------------------------------------------------------------------------------------
# Views

LOOK_PARAMETERS = [
    OpenApiParameter("k", OpenApiTypes.INT, description="Recommendations per article (default BUY_THE_LOOK['K'])."),
    OpenApiParameter("colour", OpenApiTypes.STR, many=True, description="Only these colours (repeat or comma separate)."),
    OpenApiParameter("exclude_colour", OpenApiTypes.STR, many=True, description="Not these colours."),
    OpenApiParameter("min_price", OpenApiTypes.DECIMAL),
    OpenApiParameter("max_price", OpenApiTypes.DECIMAL),
]


def _many(params, name):
    values = [value for item in params.getlist(name) for value in item.split(",")]
    return [value.strip() for value in values if value.strip()] or None


class ProductLookView(APIView):
    """The "buy the look" rows of a product: one per article of its full-shot photo."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(
        operation_id="product_look",
        parameters=LOOK_PARAMETERS,
        responses={200: LookSerializer, 400: ErrorSerializer, 404: ErrorSerializer},
        tags=["look"],
    )
    def get(self, request, pk):
        Product = apps.get_model(settings.PRODUCT_MODEL)
        products = Product.objects.all() if request.user.is_staff else Product.objects.filter(is_active=True)
        product = get_object_or_404(products, pk=pk)
        params = request.query_params
        try:
            k = params.get("k") or None
            rows = look_for(
                product, k=k, colours=_many(params, "colour"), exclude_colours=_many(params, "exclude_colour"),
                min_price=params.get("min_price") or None, max_price=params.get("max_price") or None,
            )
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        data = {"product": product.pk, "k": int(k) if k else settings.K, "rows": rows}
        return Response(LookSerializer(data, context={"request": request}).data)


class SearchByPhotoView(APIView):
    """Search by photo: the articles found in an uploaded photo and the shop's most similar products."""

    permission_classes = [permissions.AllowAny]
    throttle_classes = [SearchRateThrottle]
    throttle_scope = "search"
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="search_by_photo",
        request={"multipart/form-data": SearchRequestSerializer},
        responses={200: SearchResponseSerializer, 400: OpenApiResponse(description="Bad photo or parameter; "
                   "the message names the problem."), 429: ErrorSerializer, 503: ErrorSerializer},
        tags=["look"],
        examples=[OpenApiExample("Not an image", status_codes=["400"], response_only=True,
                                 value={"image": ["notes.jpg: not an image (cannot identify format)."]})],
    )
    def post(self, request):
        serializer = SearchRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            result = search_by_photo(
                serializer._picture, gender=data.get("gender") or None, category=data.get("category") or None,
                colours=data.get("colour") or None, exclude_colours=data.get("exclude_colour") or None,
                min_price=data.get("min_price"), max_price=data.get("max_price"), k=data.get("k"),
            )
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except Exception:  # a model or the database failing: the visitor gets a 503, staff get the log
            logger.exception("search by photo failed")
            return Response({"detail": SEARCH_UNAVAILABLE}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(SearchResponseSerializer(result, context={"request": request}).data)


class ImageAnalysisView(APIView):
    """An image's analysis (public); POST asks for a new analysis (staff)."""

    permission_classes = [ReadPublicWriteStaff]

    def _image(self, pk):
        return get_object_or_404(apps.get_model(settings.PRODUCT_IMAGE_MODEL).objects.select_related("product"), pk=pk)

    def _payload(self, image):
        analysis = ImageAnalysis.objects.filter(image=image).prefetch_related("articles").first()
        if analysis is None:
            return {"image": image.pk, "product": image.product_id, "status": "none", "articles": []}
        analysis.image = image
        return AnalysisSerializer(analysis).data

    @extend_schema(operation_id="image_analysis", responses={200: AnalysisSerializer, 404: ErrorSerializer},
                   tags=["analysis"])
    def get(self, request, pk):
        return Response(self._payload(self._image(pk)))

    @extend_schema(operation_id="image_analyse_again", request=None,
                   responses={202: AnalysisSerializer, 403: ErrorSerializer, 404: ErrorSerializer},
                   tags=["analysis"])
    def post(self, request, pk):
        from .analysis import mark_queued
        from .signals import queue_analysis

        image = self._image(pk)
        mark_queued(image)
        queue_analysis(image.pk)
        return Response(self._payload(image), status=status.HTTP_202_ACCEPTED)
