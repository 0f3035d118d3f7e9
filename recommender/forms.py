"""The search-by-photo form (page) — the API validates with the same helpers."""
from django import forms

from .conf import settings


def human_size(n):
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


def read_upload(upload):
    """Bytes of an uploaded photo, or ``forms.ValidationError`` naming the problem (size, emptiness)."""
    limit = settings.SEARCH_MAX_UPLOAD_BYTES
    name = getattr(upload, "name", "photo") or "photo"
    size = getattr(upload, "size", None)
    if size is not None and size > limit:
        raise forms.ValidationError(
            f"{name} is {human_size(size)}; photos may be at most {human_size(limit)}.", code="too_large"
        )
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise forms.ValidationError(f"{name} is larger than {human_size(limit)}, the limit.", code="too_large")
    if not data:
        raise forms.ValidationError(f"{name} is empty.", code="empty")
    return data


def decode_photo(data, name="photo"):
    """A PIL image from uploaded bytes, or ``forms.ValidationError`` with ``ml.images``' explanation."""
    from ml.images import ImageError, load_image

    try:
        return load_image(data, max_pixels=settings.SEARCH_MAX_PIXELS, max_side=settings.SEARCH_DECODE_SIDE)
    except ImageError as exc:
        raise forms.ValidationError(f"{name}: {exc}.", code="invalid_image") from None


def gender_choices():
    return [("", "Detect automatically"), ("Men", "Men"), ("Women", "Women")]


def category_choices():
    return [("", "Every article")] + [(name, settings.label(name)) for name in settings.CATEGORIES]


class SearchByPhotoForm(forms.Form):
    photo = forms.FileField(
        label="Photo",
        help_text="A photo of an outfit or of one article (JPEG, PNG, WebP or GIF).",
        widget=forms.ClearableFileInput(attrs={"accept": "image/*"}),
    )
    gender = forms.ChoiceField(label="For", required=False, choices=gender_choices)
    category = forms.ChoiceField(label="Article", required=False, choices=category_choices)
    exclude_colour = forms.CharField(
        label="Not in these colours", required=False, max_length=200,
        help_text="Comma separated, e.g. black, white",
    )

    def clean_photo(self):
        upload = self.cleaned_data["photo"]
        name = getattr(upload, "name", "photo")
        self.cleaned_data["picture"] = decode_photo(read_upload(upload), name)
        return upload
