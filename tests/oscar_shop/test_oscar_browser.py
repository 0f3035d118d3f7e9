"""Oscar's product page in Chromium (Playwright driving Debian's /usr/bin/chromium, see
scripts/install_chromium.sh): the widget inside Oscar's own layout, its boxes and rows, and a card leading to
the recommended Oscar product. The screenshot goes to test-artifacts/oscar-product-page.png."""
import re

import pytest

from oscar_factories import ARTIFACTS, Product, build_shop, missing_weights

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(bool(missing_weights()), reason=f"model weights missing: {missing_weights()}")]


@pytest.fixture
def page(chromium, request):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_oscar_product_page_shows_the_look_in_chromium(live_server, page):
    from playwright.sync_api import expect

    _, items = build_shop()  # committed: analysed (eagerly) right after the commit
    look = items["men_look"]
    page.goto(live_server.url + look.get_absolute_url())
    expect(page.locator("article.product_page h1")).to_have_text("Men's street look")  # Oscar's page
    rows = page.locator(".btl__row")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 2 and page.locator(".btl__box").count() >= rows.count()
    shown = {int(pk) for pk in page.locator(".btl__card a").evaluate_all(
        "links => links.map(link => link.dataset.product)")}
    assert items["men_tee"].pk in shown and items["men_shoe"].pk in shown
    assert not shown & {items[name].pk for name in ("women_tee", "women_shoe", "dress", "no_gender_tee", "mystery")}
    page.wait_for_function("document.querySelector('.btl__photo img').complete "
                           "&& document.querySelector('.btl__photo img').naturalWidth > 0")

    box = page.locator('.btl__box[data-category="top"]').first
    key = box.get_attribute("data-btl-key")
    box.hover()
    expect(page.locator(f'.btl__row[data-btl-key="{key}"]')).to_have_class(re.compile(r"\bis-active\b"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "oscar-product-page.png"), full_page=True)

    card = page.locator(f'.btl__row[data-btl-key="{key}"] .btl__card a').first
    product = Product.objects.get(pk=int(card.get_attribute("data-product")))
    card.click()
    page.wait_for_url(f"**{product.get_absolute_url()}")
    expect(page.locator("article.product_page h1")).to_have_text(product.get_title())


def test_staff_uploads_a_look_photo_and_changes_a_price_in_oscars_dashboard(live_server, page):
    """The shop's staff work in Oscar's dashboard as usual: a photo uploaded there is analysed once the request
    commits, and a price changed there is on the look's cards."""
    from django.contrib.auth import get_user_model
    from playwright.sync_api import expect

    from oscar_factories import MEN_LOOK, Catalogue
    from recommender.models import ImageAnalysis

    catalogue, items = build_shop()
    look = catalogue.product("Fresh look", "Looks", gender="Men", categories=["Looks"], price="99.00")
    get_user_model().objects.create_user(username="staff", email="staff@example.com", password="pw",
                                         is_staff=True, is_superuser=True)
    page.goto(live_server.url + "/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")

    page.goto(live_server.url + f"/dashboard/catalogue/products/{look.pk}/")
    page.click('a[href="#product_images"]')
    page.set_input_files('input[name="images-0-original"]', str(MEN_LOOK))
    page.click('button[name="action"][value="continue"]')
    page.wait_for_load_state()
    analysis = ImageAnalysis.objects.get(image__product=look)
    assert analysis.status == "done" and analysis.is_full_shot, analysis.error

    tee = items["men_tee"]
    page.goto(live_server.url + f"/dashboard/catalogue/products/{tee.pk}/")
    page.click('a[href="#product_stock"]')
    page.fill('input[name="stockrecords-0-price"]', "14.25")
    page.click('button[name="action"][value="continue"]')
    page.wait_for_load_state()

    page.goto(live_server.url + look.get_absolute_url())
    card = page.locator(f'.btl__card a[data-product="{tee.pk}"]').first
    expect(card).to_be_visible()
    expect(card.locator(".btl__price")).to_have_text("€14.25")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "oscar-dashboard-upload-look.png"), full_page=True)
