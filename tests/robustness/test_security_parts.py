"""An adapter that fails on every image lookup (a server error inside an API view)."""
from catalog.adapter import CatalogAdapter


class ExplodingAdapter(CatalogAdapter):
    def get_image_model(self):
        raise RuntimeError("the shop's image table is gone")
