"""REST API of the catalogue (``/api/products/``): anyone reads active products, staff write.

- ``GET /api/products/`` (filters ``gender``, ``look_category``, ``article_type``, ``colour``, ``search``;
  paginated), ``GET /api/products/{id}/``
- ``POST``, ``PUT``, ``PATCH``, ``DELETE`` (staff; JSON or multipart with an optional ``image`` file)
- ``GET /api/products/{id}/images/`` and staff ``POST`` (multipart ``image``, ``position``, ``is_primary``)

Uploads pass the same checks as the admin (``catalog.validation``); a refused file gives a 400 naming the
problem and nothing is stored.
"""
from django.db import transaction
from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import parsers, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from .forms import LOOKS
from .models import OUTFIT_CATEGORY, Product
from .serializers import ProductImageSerializer, ProductImageUploadSerializer, ProductSerializer, attach_image
from recommender.taxonomy import LOOK_CATEGORIES

READ_ACTIONS = {"list", "retrieve", "images"}

LIST_PARAMETERS = [
    OpenApiParameter("gender", OpenApiTypes.STR, description="Men, Women, Unisex, Boys, Girls"),
    OpenApiParameter("look_category", OpenApiTypes.STR,
                     description=f"{', '.join(LOOK_CATEGORIES)}, or {LOOKS!r} for outfit photos"),
    OpenApiParameter("article_type", OpenApiTypes.STR, description="e.g. Tshirts, Handbags (exact, case-insensitive)"),
    OpenApiParameter("colour", OpenApiTypes.STR, description="base colour, e.g. Black (case-insensitive)"),
    OpenApiParameter("search", OpenApiTypes.STR, description="words to find in the name or SKU"),
]


@extend_schema_view(
    list=extend_schema(summary="List products", parameters=LIST_PARAMETERS),
    retrieve=extend_schema(summary="One product"),
    create=extend_schema(summary="Create a product (staff)"),
    update=extend_schema(summary="Replace a product (staff)"),
    partial_update=extend_schema(summary="Change a product (staff)"),
    destroy=extend_schema(summary="Delete a product (staff)"),
)
class ProductViewSet(viewsets.ModelViewSet):
    serializer_class = ProductSerializer
    parser_classes = [parsers.JSONParser, parsers.MultiPartParser, parsers.FormParser]

    def get_permissions(self):
        if self.action in READ_ACTIONS and self.request.method in permissions.SAFE_METHODS:
            return [permissions.AllowAny()]
        return [permissions.IsAdminUser()]

    def get_queryset(self):
        products = Product.objects.with_primary_image().order_by("name", "id")
        user = getattr(self.request, "user", None)
        if not (user and user.is_staff):
            products = products.filter(is_active=True)
        if self.action != "list":
            return products
        params = self.request.query_params
        nul = [name for name, value in params.items() if "\x00" in name or "\x00" in value]
        if nul:  # PostgreSQL refuses NUL in text: a clear 400 instead of a database error (500)
            raise ValidationError({name.replace("\x00", "\\x00"): ["may not contain NUL characters"] for name in nul})
        if params.get("gender"):
            products = products.filter(gender__iexact=params["gender"])
        look = params.get("look_category", "").lower()
        if look == LOOKS:
            products = products.filter(master_category=OUTFIT_CATEGORY)
        elif look:
            products = products.filter(look_category=look)
        if params.get("article_type"):
            products = products.filter(article_type__iexact=params["article_type"])
        if params.get("colour"):
            products = products.filter(base_colour__iexact=params["colour"])
        for word in params.get("search", "").split()[:10]:
            products = products.filter(Q(name__icontains=word) | Q(sku__icontains=word))
        return products

    @transaction.atomic
    def perform_create(self, serializer):
        serializer.save()

    @transaction.atomic
    def perform_update(self, serializer):
        serializer.save()

    @extend_schema(methods=["GET"], summary="Images of a product", request=None,
                   responses=ProductImageSerializer(many=True))
    @extend_schema(methods=["POST"], summary="Upload an image (staff)",
                   request={"multipart/form-data": ProductImageUploadSerializer},
                   responses={201: ProductImageSerializer})
    @action(detail=True, methods=["get", "post"], url_path="images",
            parser_classes=[parsers.MultiPartParser, parsers.FormParser], pagination_class=None)
    def images(self, request, pk=None):
        product = self.get_object()
        if request.method == "GET":
            images = sorted(product.images.all(), key=lambda image: (not image.is_primary, image.position, image.id))
            return Response(ProductImageSerializer(images, many=True, context={"request": request}).data)
        upload = ProductImageUploadSerializer(data=request.data, context={"request": request, "product": product})
        upload.is_valid(raise_exception=True)
        image = attach_image(product, upload.validated_data["image"], position=upload.validated_data["position"],
                             is_primary=upload.validated_data["is_primary"] or None)
        return Response(ProductImageSerializer(image, context={"request": request}).data, status=status.HTTP_201_CREATED)
