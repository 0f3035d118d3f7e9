"""The shop's URLs plus MEDIA_ROOT served by Django (as the demo does with DEBUG on) for the browser tests."""
from django.conf import settings
from django.urls import re_path
from django.views.static import serve

from shop.urls import urlpatterns as shop_urlpatterns

urlpatterns = list(shop_urlpatterns)
if not any("media" in str(getattr(p, "pattern", "")) for p in urlpatterns):
    urlpatterns.append(re_path(r"^media/(?P<path>.*)$", lambda request, path: serve(
        request, path, document_root=settings.MEDIA_ROOT)))
