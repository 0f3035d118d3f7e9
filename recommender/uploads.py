"""Upload size limits enforced while the request body is read — before anything is written to disk.

Django writes an uploaded file to memory (small) or to a temporary file (large) as it streams in, and only
then can a form or serializer refuse it for its size. ``SizeLimitedUploadHandler``, first in
``FILE_UPLOAD_HANDLERS``, stops at the limit of the door the upload came through:

- search by photo (the page and ``POST /api/search/``): ``BUY_THE_LOOK["SEARCH_MAX_UPLOAD_BYTES"]``;
- every other upload (staff image uploads in the admin or the API): ``BUY_THE_LOOK["MAX_UPLOAD_BYTES"]``.

A request whose declared length is over the limit (plus a small envelope for the multipart headers) is refused
before its body is read; a file that grows past it is refused at the chunk that crosses it, and nothing more of
it reaches the next handlers. A file just over its limit (within the envelope) is left to the form or
serializer, whose message is the more precise.
The refusal is ``UploadTooLarge`` (a ``RequestDataTooBig``: Django answers 400 rather than 500); on API paths
``recommender.middleware.ApiErrorsAsJson`` answers it as 413 with its message, and the search page shows the
message as a form error.
"""
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler
from django.urls import Resolver404, resolve

from .conf import settings

#: URL names of the search-by-photo doors (page and API).
SEARCH_DOORS = {"search", "api-search"}


class UploadTooLarge(RequestDataTooBig):
    """An upload over its door's limit; the message names the file and the limit."""


def human_size(n):
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


def limit_for(request):
    """The upload limit of the door ``request`` came through, in bytes."""
    try:
        name = resolve(request.path_info).url_name
    except Resolver404:
        name = None
    return int(settings.SEARCH_MAX_UPLOAD_BYTES if name in SEARCH_DOORS else settings.MAX_UPLOAD_BYTES)


class SizeLimitedUploadHandler(FileUploadHandler):
    """Refuses uploads over their door's limit while reading them (see the module docstring)."""

    #: room for the multipart headers and small form fields around the file(s)
    ENVELOPE = 64 * 1024

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.limit = limit_for(self.request) if self.request is not None else int(settings.MAX_UPLOAD_BYTES)
        if content_length and content_length > self.limit + self.ENVELOPE:
            raise UploadTooLarge(
                f"the upload is {human_size(content_length)}; files may be at most {human_size(self.limit)} here"
            )
        return None

    def new_file(self, field_name, file_name, *args, **kwargs):
        super().new_file(field_name, file_name, *args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        # Up to the envelope past the limit, the form or serializer refuses the file with its own, precise
        # message ("photo.jpg is 8.1 MB; photos may be at most 8.0 MB"); beyond, it is not read any further.
        if self.received > getattr(self, "limit", int(settings.MAX_UPLOAD_BYTES)) + self.ENVELOPE:
            raise UploadTooLarge(
                f"{self.file_name or 'the file'} is larger than {human_size(self.limit)}, the limit here"
            )
        return raw_data  # on to the next handler (memory or temporary file)

    def file_complete(self, file_size):
        return None  # the next handlers make the file
