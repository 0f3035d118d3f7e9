from django.urls import path
from django.views.generic import RedirectView

from . import views

app_name = "catalog"
urlpatterns = [
    path("", RedirectView.as_view(pattern_name="catalog:product-list", query_string=True), name="home"),
    path("products/", views.ProductListView.as_view(), name="product-list"),
    path("products/<int:pk>-<slug:slug>/", views.ProductDetailView.as_view(), name="product-detail"),
]
