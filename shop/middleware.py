"""Middleware of the demo shop."""
from django.http import HttpResponseBadRequest


class RejectNullBytesMiddleware:
    """A query string with a NUL character gets a 400.

    PostgreSQL cannot hold NUL in text, so any filter that passes such a value to a query (the admin's list
    filters, an API filter) would otherwise end in a database error and a 500. Django's forms already refuse
    NUL in submitted fields; this covers every query parameter at once.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.META.get("QUERY_STRING", "") or any(
            "\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()
        ):
            return HttpResponseBadRequest("Query parameters may not contain NUL characters.",
                                          content_type="text/plain; charset=utf-8")
        return self.get_response(request)
