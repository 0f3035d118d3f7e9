"""Admin of the catalogue: changelists and change views answer, filters, actions, upload validation."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import Product, ProductImage

from catalog_helpers import image_bytes, media_files


@pytest.fixture
def stocked(make_product, add_image):
    dress = make_product(name="Red Summer Dress", sub_category="Dress", article_type="Dresses")
    add_image(dress)
    look = make_product(name="Street look 0002", master_category="Outfit", gender="", sub_category="", article_type="")
    return dress, look


@pytest.mark.django_db
@pytest.mark.parametrize("path", [
    "/admin/catalog/product/",
    "/admin/catalog/product/?gender=Women&look_category__exact=dress&is_active__exact=1",
    "/admin/catalog/product/?gender=unknown",
    "/admin/catalog/product/?master_category=Outfit",
    "/admin/catalog/product/?q=red",
    "/admin/catalog/product/add/",
    "/admin/catalog/productimage/",
    "/admin/catalog/productimage/add/",
])
def test_catalogue_admin_pages_answer(admin_client, stocked, path):
    assert admin_client.get(path).status_code == 200


@pytest.mark.django_db
def test_change_views_answer_with_previews(admin_client, stocked):
    dress, look = stocked
    image = dress.images.get()
    for product in (dress, look):
        response = admin_client.get(f"/admin/catalog/product/{product.pk}/change/")
        assert response.status_code == 200
    html = admin_client.get(f"/admin/catalog/product/{dress.pk}/change/").content.decode()
    assert image.file.url in html and image.sha256 in html  # inline preview and read-only sha256
    response = admin_client.get(f"/admin/catalog/productimage/{image.pk}/change/")
    assert response.status_code == 200 and image.file.url in response.content.decode()


@pytest.mark.django_db
def test_changelist_filters_and_searches(admin_client, stocked):
    dress, look = stocked
    response = admin_client.get("/admin/catalog/product/?gender=unknown")
    assert [p.pk for p in response.context["cl"].result_list] == [look.pk]
    response = admin_client.get("/admin/catalog/product/?q=" + dress.sku)
    assert [p.pk for p in response.context["cl"].result_list] == [dress.pk]


@pytest.mark.django_db
def test_bulk_deactivate_and_activate(admin_client, stocked):
    ids = [product.pk for product in stocked]
    admin_client.post("/admin/catalog/product/", {"action": "deactivate", "_selected_action": ids})
    assert not Product.objects.filter(pk__in=ids, is_active=True).exists()
    response = admin_client.post("/admin/catalog/product/", {"action": "activate", "_selected_action": ids}, follow=True)
    assert Product.objects.filter(pk__in=ids, is_active=True).count() == 2
    assert "2 products activated." in response.content.decode()


@pytest.mark.django_db
def test_admin_refuses_a_bad_upload_and_stores_nothing(admin_client, stocked, settings):
    dress, _ = stocked
    files_before = media_files(settings)
    tiny = SimpleUploadedFile("tiny.png", image_bytes((10, 10), "PNG"), content_type="image/png")
    response = admin_client.post("/admin/catalog/productimage/add/",
                                 {"product": dress.pk, "file": tiny, "position": 0})
    assert response.status_code == 200
    assert "at least 32×32" in response.content.decode()
    assert ProductImage.objects.count() == 1 and media_files(settings) == files_before


@pytest.mark.django_db
def test_admin_accepts_a_good_upload(admin_client, stocked):
    dress, _ = stocked
    photo = SimpleUploadedFile("side.webp", image_bytes((120, 90), "WEBP"), content_type="image/webp")
    response = admin_client.post("/admin/catalog/productimage/add/",
                                 {"product": dress.pk, "file": photo, "position": 1})
    assert response.status_code == 302
    image = dress.images.get(position=1)
    assert (image.width, image.height) == (120, 90) and image.file.name.endswith(".webp")


@pytest.mark.django_db
def test_admin_keeps_exactly_one_primary_image(admin_client):
    def inline(n, name, **extra):
        return {f"images-{n}-position": str(n),
                f"images-{n}-file": SimpleUploadedFile(name, image_bytes((90, 120), colour=(10 * n, 90, 40)),
                                                       content_type="image/jpeg"), **extra}

    form = {"sku": "PRIM-1", "name": "Primary test", "price": "9", "is_active": "on", "gender": "Women",
            "images-TOTAL_FORMS": "2", "images-INITIAL_FORMS": "0", "images-MIN_NUM_FORMS": "0",
            "images-MAX_NUM_FORMS": "1000", **inline(0, "front.jpg"), **inline(1, "back.jpg")}
    assert admin_client.post("/admin/catalog/product/add/", form).status_code == 302
    product = Product.objects.get(sku="PRIM-1")
    # nobody ticked "primary": the first image becomes it, so the shop and the analysis have a main photo
    assert list(product.images.order_by("position").values_list("is_primary", flat=True)) == [True, False]
    # a new image ticked "primary" in the image admin takes over; still exactly one
    photo = SimpleUploadedFile("new.jpg", image_bytes((90, 120), colour=(1, 2, 3)), content_type="image/jpeg")
    response = admin_client.post("/admin/catalog/productimage/add/",
                                 {"product": product.pk, "file": photo, "position": 5, "is_primary": "on"})
    assert response.status_code == 302
    assert list(product.images.filter(is_primary=True).values_list("position", flat=True)) == [5]
