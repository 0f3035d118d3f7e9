"""A visitor and a staff member in a real browser (Playwright + Debian's Chromium) on the live server:

- a visitor opens a look's product page, sees the widget's rows, hovers an article's box and sees its row
  highlighted (and the reverse), clicks a recommendation and lands on that product's page;
- a visitor searches by photo;
- a staff member logs in to the admin, uploads an image, and sees its analysis done with its boxes drawn.

Each journey runs with the weightless test pipeline (the page mechanics, always) and with the committed model
weights (the real thing; skipped until the weights are in the repository).
"""
import csv
import io
import re
from collections import defaultdict
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.management import call_command

from catalog.models import Product, ProductImage
from browser_helpers import ROOT, shot
from recommender.models import ImageAnalysis

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DEMO = ROOT / "demo_data"
LOOK_PHOTO = sorted((DEMO / "looks").glob("*.jpg"))[0]
PIPELINES = ["test-parts", "committed-weights"]


@pytest.fixture(params=PIPELINES)
def pipeline_kind(request, settings):
    from recommender import pipeline

    if request.param == "test-parts":
        request.getfixturevalue("test_pipeline")
    else:
        settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": "catalog.adapter.CatalogAdapter"}
        pipeline.reset()
    return request.param


def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def picture(seed, size=(160, 240)):
    from robust_inputs import jpeg

    return jpeg(size, seed=seed)


def stock_with_test_parts():
    """Women's tops and shoes (inventory) and a Women's look photo, analysed by the test parts on save."""
    for number in range(12):
        kind = ("Topwear", "Tops") if number % 2 == 0 else ("Shoes", "Casual Shoes")
        product = Product.objects.create(sku=f"BR-{number}", name=f"Browser {kind[1]} {number}", gender="Women",
                                         master_category="Apparel", sub_category=kind[0], article_type=kind[1],
                                         base_colour="Black", price=f"{20 + number}.00")
        image = ProductImage(product=product, is_primary=True)
        image.file = ContentFile(picture(number + 1, (120, 160)), name="p.jpg")
        image.save()
    look = Product.objects.create(sku="BR-LOOK", name="Street look BR", gender="Women", master_category="Outfit",
                                  price="0")
    image = ProductImage(product=look, is_primary=True)
    image.file = ContentFile(LOOK_PHOTO.read_bytes(), name="look.jpg")
    image.save()
    return look


def stock_with_committed_weights(tmp_path):
    """A slice of the demo catalogue (4 products per gender and look category) and one demo look, imported by
    the project's own commands and analysed by the real pipeline."""
    from recommender.taxonomy import look_category_for
    from recommender.hooks import defer_analysis

    with open(DEMO / "products" / "styles.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, picked, per_group = rows[0], [], defaultdict(int)
    for row in rows[1:]:
        record = dict(zip(header, row))
        group = (record["gender"], look_category_for(record["subCategory"], record["articleType"]))
        if group[0] in ("Men", "Women") and group[1] and per_group[group] < 4:
            per_group[group] += 1
            picked.append(row)
    styles = tmp_path / "styles.csv"
    with open(styles, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *picked])
    looks = tmp_path / "looks"
    looks.mkdir()
    (looks / LOOK_PHOTO.name).write_bytes(LOOK_PHOTO.read_bytes())
    out = io.StringIO()
    with defer_analysis():
        call_command("import_catalogue", "--styles", str(styles), "--images", str(DEMO / "products" / "images"),
                     stdout=out, stderr=out)
        call_command("import_looks", "--photos", str(looks), stdout=out, stderr=out)
    call_command("analyse", "--pending", "--no-progress", stdout=out, stderr=out)
    return Product.objects.get(master_category="Outfit")


@pytest.fixture
def look(pipeline_kind, tmp_path, transactional_db):
    product = stock_with_test_parts() if pipeline_kind == "test-parts" else stock_with_committed_weights(tmp_path)
    analysis = ImageAnalysis.objects.get(image__product=product)
    assert analysis.status == "done" and analysis.is_full_shot, (analysis.status, analysis.error)
    return product


def test_visitor_explores_a_look_and_follows_a_recommendation(live_server, page, look, pipeline_kind):
    expect_ = expect()
    page.goto(live_server.url + look.get_absolute_url())
    rows = page.locator(".btl__row")
    expect_(rows.first).to_be_visible()
    if pipeline_kind == "test-parts":
        expect_(page.locator(".btl__row-label")).to_have_text(["Top", "Footwear"])
    assert rows.count() >= 1 and page.locator(".btl__box").count() >= rows.count()
    for index in range(rows.count()):
        assert rows.nth(index).locator(".btl__card").count() >= 1, f"row {index} has no recommendation"
    page.wait_for_function("document.querySelector('.btl__photo img').complete")
    shot(page, f"widget-{pipeline_kind}")

    # Hover a box: its row lights up, the others do not.
    first_box = page.locator(".btl__box").first
    key = first_box.get_attribute("data-btl-key")
    first_box.hover()
    expect_(page.locator(f'.btl__row[data-btl-key="{key}"]')).to_have_class(re.compile(r"\bis-active\b"))
    expect_(first_box).to_have_class(re.compile(r"\bis-active\b"))
    assert page.locator(".btl__row.is-active").count() == 1
    shot(page, f"widget-hover-box-{pipeline_kind}")

    # And the reverse: hover the last row, its box(es) light up and the first one goes out.
    last_row = rows.nth(rows.count() - 1)
    last_key = last_row.get_attribute("data-btl-key")
    last_row.locator(".btl__row-title").hover()
    expect_(page.locator(f'.btl__box[data-btl-key="{last_key}"]').first).to_have_class(re.compile(r"\bis-active\b"))
    if last_key != key:
        expect_(first_box).not_to_have_class(re.compile(r"\bis-active\b"))
    shot(page, f"widget-hover-row-{pipeline_kind}")

    # Click a recommendation: its product page.
    card = rows.first.locator(".btl__card a").first
    product = Product.objects.get(pk=int(card.get_attribute("data-product")))
    card.click()
    page.wait_for_url(f"**{product.get_absolute_url()}")
    expect_(page.locator("h1.product__name")).to_have_text(product.name)
    shot(page, f"recommendation-page-{pipeline_kind}")


def test_visitor_searches_by_photo(live_server, page, look, pipeline_kind):
    expect_ = expect()
    page.goto(live_server.url + "/search/")
    page.set_input_files('input[name="photo"]', str(LOOK_PHOTO))
    page.locator('form.btl-search__form button[type="submit"]').click()
    page.wait_for_load_state()
    expect_(page.locator(".btl__row").first).to_be_visible()
    if pipeline_kind == "test-parts":
        expect_(page.locator(".btl__row-label")).to_have_text(["Top", "Footwear"])
    assert page.locator(".btl__card").count() >= 1
    assert page.locator(".btl__photo img").get_attribute("src").startswith("data:image/jpeg;base64,")
    shot(page, f"search-by-photo-{pipeline_kind}")
    # A bad file is refused on the page with its reason.
    page.goto(live_server.url + "/search/")
    page.set_input_files('input[name="photo"]', files=[{"name": "notes.jpg", "mimeType": "image/jpeg",
                                                       "buffer": b"not a photo at all\n" * 10}])
    page.locator('form.btl-search__form button[type="submit"]').click()
    expect_(page.locator(".btl-search__errors")).to_contain_text("not an image")


def test_staff_uploads_an_image_and_sees_its_boxes(live_server, page, pipeline_kind, transactional_db):
    expect_ = expect()
    get_user_model().objects.create_superuser("browser-admin", "admin@example.com", "pw-browser-admin-1")
    outfit = Product.objects.create(sku="BR-NEW-LOOK", name="New street look", master_category="Outfit",
                                    gender="Women", price="0")
    page.goto(live_server.url + "/admin/login/")
    page.fill("#id_username", "browser-admin")
    page.fill("#id_password", "pw-browser-admin-1")
    page.locator('input[type="submit"]').click()
    page.wait_for_url("**/admin/")
    page.goto(live_server.url + f"/admin/catalog/product/{outfit.pk}/change/")
    page.set_input_files('input[name="images-0-file"]', str(LOOK_PHOTO))
    shot(page, f"admin-upload-{pipeline_kind}")
    with page.expect_navigation(timeout=300_000):
        page.locator('input[name="_continue"]').click()
    expect_(page.locator(".messagelist")).to_contain_text("was changed successfully")
    image = outfit.images.get()
    # The analysis runs after the upload is committed; the image's admin page shows it once done.
    page.goto(live_server.url + f"/admin/catalog/productimage/{image.pk}/change/")
    for _ in range(60):
        if ImageAnalysis.objects.filter(image=image, status__in=["done", "failed", "skipped"]).exists():
            break
        page.wait_for_timeout(2000)
    page.reload()
    analysis = ImageAnalysis.objects.get(image=image)
    assert analysis.status == "done", analysis.error
    expect_(page.locator(".btl-admin").first).to_be_visible()
    boxes = page.locator(".btl-admin .btl__box")
    assert boxes.count() == analysis.articles.count() >= 1
    if pipeline_kind == "test-parts":
        assert sorted(boxes.nth(i).get_attribute("data-category") for i in range(boxes.count())) == ["footwear", "top"]
    box = boxes.first.bounding_box()
    frame = page.locator(".btl-admin .btl__frame").first.bounding_box()
    assert box and frame and box["width"] > 5 and box["height"] > 5  # drawn, inside the photo
    assert frame["x"] - 1 <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"] + 1
    assert "done" in page.content()
    page.locator(".btl-admin").first.scroll_into_view_if_needed()
    shot(page, f"admin-analysis-done-{pipeline_kind}")
