from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api/", include("catalog.api_urls")),
    path("api/", include("recommender.api_urls")),
    path("", include("recommender.urls")),
    path("", include("catalog.urls")),
]

if settings.DEBUG or getattr(settings, "SERVE_MEDIA", False):
    # The demo serves uploaded images itself: with DEBUG on (runserver) and on its production server (SERVE_MEDIA,
    # scripts/serve.sh). Django's `static()` helper adds nothing with DEBUG off, so the view is routed directly; it
    # answers only files under MEDIA_ROOT (a path leading out of it is refused) and lists no directories. Media
    # change at run time (staff uploads), so WhiteNoise, which indexes its files at start, does not serve them.
    # A production shop serves MEDIA_ROOT from its web server or object storage instead.
    urlpatterns += [re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT})]
