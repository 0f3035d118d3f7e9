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
