"""``ApiErrorsAsJson``: every error answered on an API path is JSON, ``{"detail": "..."}``, whoever raised it.

DRF answers its own errors in JSON. Errors raised by Django before or around a view — an unknown API URL
(404), a bad ``Host`` header (400), a request body or too many fields over the limits (400/413), a server
error (500) — come back from Django's handlers as HTML pages, which an API client cannot read. Put this
middleware first in ``MIDDLEWARE``; it rewrites such responses on paths under
``BUY_THE_LOOK["API_PATH_PREFIX"]`` (``"/api/"``), keeping their status, and leaves everything else alone
(DRF's own responses, successful pages such as the API docs, the shop's HTML pages).
"""
from http import HTTPStatus

from django.http import JsonResponse

from .conf import settings
from .uploads import UploadTooLarge

MESSAGES = {
    400: "Bad request.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    405: "Method not allowed.",
    413: "Request body too large.",
    500: "Server error; please try again later.",
}


class ApiErrorsAsJson:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        return self.as_json(request, response)

    def process_exception(self, request, exception):
        """An upload over its limit on an API path: 413 with the message naming the file and the limit."""
        if isinstance(exception, UploadTooLarge) and request.path.startswith(settings.API_PATH_PREFIX):
            return JsonResponse({"detail": str(exception)}, status=413)
        return None

    @staticmethod
    def as_json(request, response):
        if response.status_code < 400 or not request.path.startswith(settings.API_PATH_PREFIX):
            return response
        if "json" in (response.get("Content-Type") or "") or hasattr(response, "renderer_context"):
            return response  # DRF's own (or already JSON)
        status = response.status_code
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        replaced = JsonResponse({"detail": MESSAGES.get(status, f"{phrase}.")}, status=status)
        for header in ("Retry-After", "Allow", "WWW-Authenticate"):
            if header in response:
                replaced[header] = response[header]
        return replaced


class UploadLimits:
    """Refuses an upload whose declared size (``Content-Length``) is over its door's limit before anything of
    it is read (``recommender.uploads``): 413 with a message naming the limit — JSON on API paths, the search
    page with the message as a form error. Put it before ``CsrfViewMiddleware`` (which reads the body)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from .uploads import SizeLimitedUploadHandler, human_size, limit_for

        if request.method in ("POST", "PUT", "PATCH"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            limit = limit_for(request)
            if length > limit + SizeLimitedUploadHandler.ENVELOPE:
                message = f"the upload is {human_size(length)}; files may be at most {human_size(limit)} here"
                return self.refuse(request, message)
        return self.get_response(request)

    @staticmethod
    def refuse(request, message):
        from django.http import HttpResponse
        from django.urls import Resolver404, resolve

        from . import views
        from .forms import SearchByPhotoForm

        if request.path.startswith(settings.API_PATH_PREFIX):
            return JsonResponse({"detail": message}, status=413)
        sentence = message[0].upper() + message[1:] + "."
        try:
            page = resolve(request.path_info).view_name
        except Resolver404:
            page = None
        plain = HttpResponse(sentence, status=413, content_type="text/plain; charset=utf-8")
        if page != "recommender:search":  # (an Oscar shop has a "search" page of its own)
            return plain
        form = SearchByPhotoForm()
        form.cleaned_data = {}
        form.add_error(None, sentence)
        try:
            return views.page(request, {"form": form}, status=413)  # in the shop's layout
        except Exception:  # a layout that needs what a later middleware sets (Oscar's: request.basket)
            return plain
