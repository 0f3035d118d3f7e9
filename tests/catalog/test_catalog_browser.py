"""The product page's gallery in a real browser (Debian's Chromium through Playwright): a thumbnail click
shows its photo without loading another page."""
import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (make test installs it)"),
]


@pytest.fixture
def quiet_signals(monkeypatch):
    """The live server commits for real: keep the recommender from analysing the test images."""
    from catalog import signals

    monkeypatch.setattr(signals.product_image_changed, "send", lambda *args, **kwargs: [])
    monkeypatch.setattr(signals.product_changed, "send", lambda *args, **kwargs: [])


@pytest.fixture
def browser_page(chromium):
    """A Chromium page. Request it after the fixtures that write to the database: Playwright's sync API runs an
    event loop, and ORM calls made inside it would use a connection of their own that nobody closes."""
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def gallery(transactional_db, quiet_signals, make_product, add_image):
    product = make_product(name="Gallery Dress", sub_category="Dress", article_type="Dresses")
    first = add_image(product, is_primary=True)
    second = add_image(product, position=1, is_primary=False)
    return product.get_absolute_url(), first.file.url, second.file.url


@pytest.fixture
def men_and_women(transactional_db, quiet_signals, make_product):
    make_product(sku="M1", name="Men Shirt", gender="Men")
    make_product(sku="W1", name="Women Top", gender="Women")


def test_thumbnail_switches_the_main_photo_without_a_reload(gallery, live_server, browser_page):
    url, first_url, second_url = gallery
    page = browser_page
    page.goto(live_server.url + url)
    main = page.locator("[data-gallery-main]")
    assert main.get_attribute("src") == first_url
    page.evaluate("window.__sameDocument = true")

    page.locator("[data-gallery-thumb]").nth(1).click()

    assert main.get_attribute("src") == second_url
    assert page.locator("[data-gallery-thumb]").nth(1).get_attribute("aria-current") == "true"
    assert page.locator("[data-gallery-thumb]").nth(0).get_attribute("aria-current") is None
    assert page.evaluate("window.__sameDocument") is True  # no page load happened


def test_changing_a_filter_select_submits_the_form(men_and_women, live_server, browser_page):
    page = browser_page
    page.goto(live_server.url + "/products/")
    with page.expect_navigation():
        page.select_option("#id_gender", "Women")
    assert "gender=Women" in page.url
    assert page.locator(".card__name").all_inner_texts() == ["Women Top"]
