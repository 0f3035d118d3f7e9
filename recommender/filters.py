"""What a visitor may ask of a look: k, colours to keep or leave out, a price range — validated.

``Filters.build(...)`` raises ``ValueError`` with a message naming the parameter (the API answers it as a
400, the page as a form error).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .conf import settings


def _normalise_colours(colours):
    if not colours:
        return []
    if isinstance(colours, str):
        colours = colours.split(",")
    result = []
    for colour in colours:
        for part in str(colour).split(","):
            part = part.strip().lower()
            if part and part not in result:
                result.append(part)
    return result


def _price(value, name):
    if value in (None, ""):
        return None
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not price.is_finite() or price < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return price


def _k(k):
    if k in (None, ""):
        return settings.K
    try:
        k = int(k)
    except (TypeError, ValueError):
        raise ValueError(f"k must be a whole number, got {k!r}") from None
    if not 1 <= k <= settings.MAX_K:
        raise ValueError(f"k must be between 1 and {settings.MAX_K}, got {k}")
    return k


@dataclass
class Filters:
    k: int
    colours: list
    exclude_colours: list
    min_price: Decimal | None
    max_price: Decimal | None

    @classmethod
    def build(cls, k=None, colours=None, exclude_colours=None, min_price=None, max_price=None):
        filters = cls(
            k=_k(k),
            colours=_normalise_colours(colours),
            exclude_colours=_normalise_colours(exclude_colours),
            min_price=_price(min_price, "min_price"),
            max_price=_price(max_price, "max_price"),
        )
        if filters.min_price is not None and filters.max_price is not None and filters.min_price > filters.max_price:
            raise ValueError("min_price is greater than max_price")
        return filters

    def is_plain(self):
        """No colour or price filter: only k (the product page's widget)."""
        return not (self.colours or self.exclude_colours or self.min_price is not None or self.max_price is not None)
