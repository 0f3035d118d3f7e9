"""The look categories the models know, read from ``ml/categories.json`` (the one taxonomy file).

``LOOK_CATEGORIES`` is the detector's class order: changing it invalidates ``detector.weights.h5``.
"""
import json
from functools import lru_cache
from pathlib import Path

TAXONOMY_PATH = Path(__file__).with_name("categories.json")

#: The detector's classes, in its output order (also the display order of look rows).
LOOK_CATEGORIES = ("top", "bottom", "dress", "footwear", "bag")


@lru_cache(maxsize=1)
def taxonomy() -> dict:
    """The parsed ``categories.json``."""
    with open(TAXONOMY_PATH, encoding="utf-8") as handle:
        data = json.load(handle)
    if tuple(data["look"]) != LOOK_CATEGORIES:
        raise ValueError(f"{TAXONOMY_PATH}: look categories {tuple(data['look'])} differ from {LOOK_CATEGORIES}")
    return data
