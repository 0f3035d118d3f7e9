"""Hostile query strings on every page and list: NUL characters, very long values, odd pages, unknown choices,
SQL-looking text — a 4xx or a normal page, never a 500."""
import pytest
from django.core.files.base import ContentFile
from rest_framework.test import APIClient

from catalog.models import Product, ProductImage
from robust_inputs import jpeg

pytestmark = pytest.mark.django_db

VALUES = ["%00", "a%00b", "x" * 5000, "%FF%FE", "' OR 1=1 --", "-1", "0", "99999999999999999999", "%E2%98%83",
          "[]", "{}", "1e309", "NaN"]
PUBLIC = [
    "/api/products/?search={v}", "/api/products/?gender={v}", "/api/products/?colour={v}",
    "/api/products/?article_type={v}", "/api/products/?look_category={v}", "/api/products/?page={v}",
    "/api/products/{pk}/look/?colour={v}", "/api/products/{pk}/look/?exclude_colour={v}",
    "/api/products/{pk}/look/?k={v}", "/api/products/{pk}/look/?min_price={v}&max_price={v}",
    "/products/?q={v}", "/products/?gender={v}&look={v}", "/products/?colour={v}&article_type={v}",
    "/products/?min_price={v}&max_price={v}", "/products/?page={v}", "/products/?sort={v}", "/search/?{v}={v}",
    "/api/schema/?format={v}",
]
ADMIN = [
    "/admin/catalog/product/?q={v}", "/admin/catalog/product/?gender={v}",
    "/admin/catalog/product/?look_category__exact={v}", "/admin/catalog/product/?o={v}",
    "/admin/catalog/productimage/?analysis_status={v}", "/admin/catalog/productimage/?q={v}",
    "/admin/recommender/imageanalysis/?status__exact={v}", "/admin/recommender/imageanalysis/?q={v}",
    "/admin/recommender/imageanalysis/?updated_at__year={v}", "/admin/recommender/imageanalysis/?p={v}",
]


@pytest.fixture
def pk(db):
    product = Product.objects.create(sku="Q-1", name="Query top", gender="Women", sub_category="Topwear", price="5")
    image = ProductImage(product=product, is_primary=True)
    image.file = ContentFile(jpeg(), name="q.jpg")
    image.save()
    return product.pk


def codes(client, templates, pk):
    found = {}
    for template in templates:
        for value in VALUES:
            url = template.format(v=value, pk=pk)
            found[url[:120]] = client.get(url).status_code
    return found


def test_public_pages_and_api(pk):
    client = APIClient(raise_request_exception=False)
    found = codes(client, PUBLIC, pk)
    assert not {url: code for url, code in found.items() if code >= 500}
    assert client.get("/api/products/?gender=%00").status_code == 400


def test_admin_lists(pk, admin_client):
    admin_client.raise_request_exception = False
    found = codes(admin_client, ADMIN, pk)
    assert not {url: code for url, code in found.items() if code >= 500}


def test_the_catalogue_api_refuses_nul_without_the_shop_middleware(pk, settings):
    """The plugin does not rely on the demo shop's middleware: its own filters refuse NUL with a 400."""
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != "shop.middleware.RejectNullBytesMiddleware"]
    client = APIClient(raise_request_exception=False)
    for name in ("search", "gender", "colour", "article_type", "look_category"):
        response = client.get(f"/api/products/?{name}=a%00b")
        assert response.status_code == 400 and "NUL" in response.content.decode(), name
