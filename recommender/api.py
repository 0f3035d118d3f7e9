"""REST API of the recommender (Django REST framework, documented with drf-spectacular).

- ``GET  /api/products/{id}/look/``      the widget's data (public)
- ``POST /api/search/``                  search by photo (public, throttled: scope "search", size-limited)
- ``GET  /api/images/{id}/analysis/``    an image's analysis: status, boxes, timings (public; staff only for
                                         the images of products visitors cannot see)
- ``POST /api/images/{id}/analysis/``    analyse it again (staff, session or token)
"""
import logging

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from .conf import settings
from .looks import look_for
from .models import ImageAnalysis
from .photo_search import search_by_photo
from .serializers import (AnalysisSerializer, ErrorSerializer, LookSerializer, SearchRequestSerializer,
                          SearchResponseSerializer)

logger = logging.getLogger(__name__)

SEARCH_UNAVAILABLE = "Search by photo is unavailable right now; please try again later."


class SearchRateThrottle(ScopedRateThrottle):
    """The "search" rate (scope ``search``). Its counts live in the cache; when the cache is unreachable the
    search is let through (and logged) rather than failed: the shop stays usable while Redis is down.

    A visitor is identified by the connection's address (``REMOTE_ADDR``), never by a header the visitor can
    write: ``X-Forwarded-For`` is read only when ``BUY_THE_LOOK["TRUSTED_PROXIES"]`` says how many proxies of
    the shop's own stand in front (then the address that many hops from the right is the client's).
    """

    def get_ident(self, request):
        remote = request.META.get("REMOTE_ADDR") or ""
        proxies = int(settings.TRUSTED_PROXIES or 0)
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if proxies > 0 and forwarded:
            hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
            if hops:
                return hops[-min(proxies, len(hops))]
        return remote

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
        adapter = settings.adapter
        products = (adapter.get_product_model()._default_manager.all() if request.user.is_staff
                    else adapter.visible_products(request))
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
    """An image's analysis (public, except for images of products hidden from visitors: 404 as for the
    product's look); POST asks for a new analysis (staff)."""

    permission_classes = [ReadPublicWriteStaff]

    def _image(self, request, pk):
        adapter = settings.adapter
        images = adapter.get_image_model()._default_manager.all()
        if not request.user.is_staff:  # an image of a product visitors may not see is hidden like the product
            images = images.filter(**{f"{adapter.image_product_field}__in": adapter.visible_products(request)})
        return get_object_or_404(images, pk=pk)

    def _payload(self, image):
        analysis = ImageAnalysis.objects.filter(image=image).prefetch_related("articles").first()
        if analysis is None:
            product = settings.adapter.product_of(image)
            return {"image": image.pk, "product": product.pk, "status": "none", "articles": []}
        analysis.image = image
        return AnalysisSerializer(analysis).data

    @extend_schema(operation_id="image_analysis", responses={200: AnalysisSerializer, 404: ErrorSerializer},
                   tags=["analysis"])
    def get(self, request, pk):
        return Response(self._payload(self._image(request, pk)))

    @extend_schema(operation_id="image_analyse_again", request=None,
                   responses={202: AnalysisSerializer, 403: ErrorSerializer, 404: ErrorSerializer},
                   tags=["analysis"])
    def post(self, request, pk):
        from .analysis import mark_queued
        from .hooks import queue_analysis

        image = self._image(request, pk)
        mark_queued(image)
        queue_analysis(image.pk)
        return Response(self._payload(image), status=status.HTTP_202_ACCEPTED)
