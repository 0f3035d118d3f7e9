"""Product adapters: the one interface through which the recommender learns about a shop's products.

``ProductAdapter``, ``ProductFacts`` and ``ImageFacts`` are defined in ``recommender.adapters.base``; the
adapter for django-oscar shops is ``recommender.adapters.oscar.OscarAdapter``. ``get_adapter()`` returns
the configured adapter (``BUY_THE_LOOK["PRODUCT_ADAPTER"]``), built once per process.
"""
from .base import ImageFacts, ProductAdapter, ProductFacts

__all__ = ["ImageFacts", "ProductAdapter", "ProductFacts", "get_adapter"]


def get_adapter() -> ProductAdapter:
    """The shop's configured adapter instance."""
    from ..conf import settings

    return settings.adapter
