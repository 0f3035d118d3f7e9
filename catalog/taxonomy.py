"""The look taxonomy: which catalogue categories form each look category.

The source of truth is ``catalog/categories.json`` (a copy of the data set's taxonomy).
"""
import json
from functools import lru_cache
from pathlib import Path

TAXONOMY_PATH = Path(__file__).with_name("categories.json")

TOP, BOTTOM, DRESS, FOOTWEAR, BAG = "top", "bottom", "dress", "footwear", "bag"
LOOK_CATEGORIES = (TOP, BOTTOM, DRESS, FOOTWEAR, BAG)
LOOK_CATEGORY_CHOICES = [(name, name.title()) for name in LOOK_CATEGORIES]


@lru_cache(maxsize=1)
def taxonomy():
    with open(TAXONOMY_PATH, encoding="utf-8") as handle:
        return json.load(handle)


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
    """Look category of a catalogue product, or "" when it belongs to none.

    articleType entries win over subCategory entries (Rompers under Topwear is a dress).
    """
    by_article_type, by_sub_category = _lookup_tables()
    article_type = (article_type or "").strip().lower()
    sub_category = (sub_category or "").strip().lower()
    if article_type in by_article_type:
        return by_article_type[article_type]
    return by_sub_category.get(sub_category, "")
