"""The search-by-photo page: ``/search/`` (``recommender:search``)."""
import base64
import io
import logging
import math

from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from .conf import settings
from .forms import SearchByPhotoForm
from .photo_search import search_by_photo

logger = logging.getLogger(__name__)

PREVIEW_SIDE = 640


def preview_data_url(picture):
    """The visitor's photo, downscaled, as a data URL: shown back without ever being stored."""
    preview = picture.copy()
    preview.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    buffer = io.BytesIO()
    preview.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"), preview.size


def page(request, context, status=200):
    """The search page inside the shop's own layout: the adapter's ``page_template`` (``base.html``; Oscar's
    ``oscar/layout.html`` for a django-oscar shop, which has no ``base.html``)."""
    context = {"base_template": getattr(settings.adapter, "page_template", "") or "base.html", **context}
    return render(request, "recommender/search.html", context, status=status)


class _SearchThrottleScope:
    throttle_scope = "search"


def throttle_wait(request):
    """Seconds this visitor must wait before the next search by photo, or None. The page shares the API's
    "search" rate (``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["search"]``) and its counter: each search runs
    the whole pipeline, whichever door it comes through."""
    from .api import SearchRateThrottle

    throttle = SearchRateThrottle()
    if throttle.allow_request(request, _SearchThrottleScope()):
        return None
    return max(1, math.ceil(throttle.wait() or 1))


@require_http_methods(["GET", "POST"])
def search(request):
    if request.method == "POST":
        wait = throttle_wait(request)
        if wait is not None:
            form = SearchByPhotoForm()
            form.cleaned_data = {}
            form.add_error(None, f"Too many searches; please try again in {wait} seconds.")
            response = page(request, {"form": form}, status=429)
            response["Retry-After"] = str(wait)
            return response
    form = SearchByPhotoForm(request.POST or None, request.FILES or None)
    context = {"form": form}
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                result = search_by_photo(
                    data["picture"], gender=data["gender"] or None, category=data["category"] or None,
                    exclude_colours=data["exclude_colour"] or None,
                )
            except ValueError as exc:
                form.add_error(None, str(exc))
                status = 400
            except Exception:
                logger.exception("search by photo failed")
                form.add_error(None, "Search by photo is unavailable right now; please try again later.")
                status = 503
            else:
                url, (width, height) = preview_data_url(result.picture)
                context.update(result=result, photo_url=url, photo_width=width, photo_height=height)
        else:
            status = 400
    return page(request, context, status=status)
