from django.urls import path

from . import api

urlpatterns = [
    path("products/<int:pk>/look/", api.ProductLookView.as_view(), name="api-product-look"),
    path("search/", api.SearchByPhotoView.as_view(), name="api-search"),
    path("images/<int:pk>/analysis/", api.ImageAnalysisView.as_view(), name="api-image-analysis"),
]
