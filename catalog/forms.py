"""Forms of the shop's pages: the product list's filters."""
from django import forms
from django.db.models import Q

from .models import OUTFIT_CATEGORY, Gender, Product
from recommender.taxonomy import LOOK_CATEGORIES

LOOKS = "looks"  # the "look" filter value that lists outfit photos
LOOK_FILTER_LABELS = {"top": "Tops", "bottom": "Bottoms", "dress": "Dresses", "footwear": "Shoes", "bag": "Bags",
                      LOOKS: "Looks"}
SORTS = {
    "name": ("Name", ["name", "id"]),
    "price": ("Price: low to high", ["price", "name", "id"]),
    "-price": ("Price: high to low", ["-price", "name", "id"]),
    "newest": ("Newest", ["-year", "-id"]),
}


def _distinct(queryset, field_name):
    values = queryset.exclude(**{field_name: ""}).order_by(field_name).values_list(field_name, flat=True).distinct()
    return [(value, value) for value in values]


class ProductFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=100,
                        widget=forms.SearchInput(attrs={"placeholder": "Name or SKU"}))
    gender = forms.ChoiceField(required=False)
    look = forms.ChoiceField(label="Category", required=False)
    article_type = forms.ChoiceField(label="Type", required=False)
    colour = forms.ChoiceField(required=False)
    min_price = forms.DecimalField(label="Min €", required=False, min_value=0, max_digits=10, decimal_places=2,
                                   widget=forms.NumberInput(attrs={"placeholder": "Min", "step": "1"}))
    max_price = forms.DecimalField(label="Max €", required=False, min_value=0, max_digits=10, decimal_places=2,
                                   widget=forms.NumberInput(attrs={"placeholder": "Max", "step": "1"}))
    sort = forms.ChoiceField(required=False, choices=[(key, label) for key, (label, _) in SORTS.items()])

    def __init__(self, data=None, *, products=None, **kwargs):
        super().__init__(data, **kwargs)
        products = products if products is not None else Product.objects.active()
        self.fields["gender"].choices = [("", "All")] + [(g.value, g.label) for g in Gender if g.value]
        self.fields["look"].choices = [("", "All")] + [(key, LOOK_FILTER_LABELS[key]) for key in (*LOOK_CATEGORIES, LOOKS)]
        self.fields["article_type"].choices = [("", "All")] + _distinct(products, "article_type")
        self.fields["colour"].choices = [("", "All")] + _distinct(products, "base_colour")

    def filter(self, queryset):
        """Apply every valid filter; an invalid value (e.g. an unknown gender) is ignored, not an error."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        if data.get("q"):
            for word in data["q"].split():
                queryset = queryset.filter(Q(name__icontains=word) | Q(sku__icontains=word))
        if data.get("gender"):
            queryset = queryset.filter(gender=data["gender"])
        if data.get("look") == LOOKS:
            queryset = queryset.filter(master_category=OUTFIT_CATEGORY)
        elif data.get("look"):
            queryset = queryset.filter(look_category=data["look"])
        if data.get("article_type"):
            queryset = queryset.filter(article_type=data["article_type"])
        if data.get("colour"):
            queryset = queryset.filter(base_colour=data["colour"])
        if data.get("min_price") is not None:
            queryset = queryset.filter(price__gte=data["min_price"])
        if data.get("max_price") is not None:
            queryset = queryset.filter(price__lte=data["max_price"])
        return queryset.order_by(*SORTS[data.get("sort") or "name"][1])

    def active_filters(self):
        """``[(label, value text, query string without it)]`` for the "remove this filter" chips."""
        if not hasattr(self, "cleaned_data"):
            return []
        chips = []
        for name, value in self.cleaned_data.items():
            if name == "sort" or value in (None, ""):
                continue
            field = self[name]
            text = dict(self.fields[name].choices).get(value, value) if hasattr(self.fields[name], "choices") else value
            rest = self.data.copy()
            rest.pop(name, None)
            rest.pop("page", None)
            chips.append((field.label or name.title(), text, rest.urlencode()))
        return chips
