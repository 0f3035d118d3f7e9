"""The look taxonomy: the look categories and which street labels and catalogue categories form each.

One source of truth, ``ml/categories.json`` (the models are trained on it); this module is the Django side's
view of it. Shops, adapters and the demo ``catalog`` read the categories from here, never from a copy.

- ``LOOK_CATEGORIES``: ``("top", "bottom", "dress", "footwear", "bag")``, in display order.
- ``look_category_for(sub_category, article_type)``: the look category of a catalogue product, or "".
- ``GENDERS``: the genders products and looks may have ("" = unknown).
"""
from functools import lru_cache

from ml.taxonomy import LOOK_CATEGORIES, taxonomy  # noqa: F401  (re-exported)

LOOK_CATEGORY_LABELS = {name: name.title() for name in LOOK_CATEGORIES}
LOOK_CATEGORY_CHOICES = [(name, LOOK_CATEGORY_LABELS[name]) for name in LOOK_CATEGORIES]

#: Genders a product or a look may have, as the catalogue data spells them; "" is unknown.
GENDERS = ("Men", "Women", "Boys", "Girls", "Unisex")
GENDER_CHOICES = [(name, name) for name in GENDERS]


@lru_cache(maxsize=1)
def _lookup_tables():
    by_article_type, by_sub_category = {}, {}
    for look, spec in taxonomy()["look"].items():
        for value in spec["catalogue"].get("articleType", []):
            by_article_type[value.strip().lower()] = look
        for value in spec["catalogue"].get("subCategory", []):
            by_sub_category[value.strip().lower()] = look
    return by_article_type, by_sub_category


def look_category_for(sub_category: str, article_type: str) -> str:
    """Look category of a product described with the catalogue's sub-category and article type, or "".

    articleType entries win over subCategory entries (Rompers under Topwear is a dress).
    """
    by_article_type, by_sub_category = _lookup_tables()
    article_type = (article_type or "").strip().lower()
    sub_category = (sub_category or "").strip().lower()
    if article_type in by_article_type:
        return by_article_type[article_type]
    return by_sub_category.get(sub_category, "")
