"""``/api/products/…`` of the catalogue. The recommender adds ``/api/products/{id}/look/`` in its own URLs:
no ``look`` action here, so the two never collide."""
from rest_framework.routers import SimpleRouter

from .api import ProductViewSet

router = SimpleRouter()
router.register("products", ProductViewSet, basename="product")

urlpatterns = router.urls
