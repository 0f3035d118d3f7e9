"""URLs of the Oscar test shop: Oscar's, plus the plugin's two includes (docs/add-to-your-shop.md)."""
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    # buy-the-look: the look API, and the search-by-photo page. Oscar has its own /search/ (its product search),
    # so the plugin's page gets a prefix here: /buy-the-look/search/.
    path("api/", include("recommender.api_urls")),
    path("buy-the-look/", include("recommender.urls")),
    path("", include(apps.get_app_config("oscar").urls[0])),
]

if settings.DEBUG or getattr(settings, "SERVE_MEDIA", False):
    urlpatterns += [re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT})]
