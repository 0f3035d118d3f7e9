"""The plugin in a django-oscar shop, end to end: Oscar products with images and attributes → analyses (eager)
→ Oscar's own product page shows the widget → look and search APIs answer with Oscar products → Oscar price and
stock changes reach the widget → deleted images take their vectors along. The catalogue (``oscar_factories.
build_shop``) is built and analysed once for the module; every test runs in a transaction rolled back after it.
"""
import re

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command

from oscar_factories import MEN_LOOK, NOT_AN_IMAGE, TSHIRT, WOMEN_LOOK, ProductImage, StockRecord, add_image, missing_weights
from recommender.models import DetectedArticle, ImageAnalysis

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(bool(missing_weights()), reason=f"model weights missing: {missing_weights()}"),
]

CARD = re.compile(r'data-product="(\d+)"')


def cards(html):
    return {int(pk) for pk in CARD.findall(html)}


def row_cards(html):
    """``{category: {product pk}}`` of the widget's rows."""
    rows = {}
    for match in re.finditer(r'<section class="btl__row"[^>]*data-category="(\w+)"[^>]*>(.*?)</section>', html, re.S):
        rows.setdefault(match.group(1), set()).update(cards(match.group(2)))
    return rows


def look_api(client, product, **params):
    response = client.get(f"/api/products/{product.pk}/look/", params)
    assert response.status_code == 200, response.content[:500]
    return response.json()


def api_rows(payload):
    return {row["category"]: [card["id"] for card in row["recommendations"]] for row in payload["rows"]}


def test_every_oscar_image_is_analysed_with_the_products_facts(shop):
    men_look, women_look = ImageAnalysis.objects.get(product_id=shop["men_look"].pk), \
        ImageAnalysis.objects.get(product_id=shop["women_look"].pk)
    for look, gender in ((men_look, "Men"), (women_look, "Women")):
        assert look.status == "done" and look.is_full_shot, look.error
        assert look.gender == gender and look.gender_source == "product"  # from the Oscar gender attribute
        assert {"top", "footwear"} <= set(look.articles.values_list("category", flat=True))
    expected = {"men_tee": ("top", "Men"), "women_tee": ("top", "Women"), "men_shoe": ("footwear", "Men"),
                "women_shoe": ("footwear", "Women"), "dress": ("dress", "Women"), "no_gender_tee": ("top", "")}
    for name, (category, gender) in expected.items():
        article = DetectedArticle.objects.get(product_id=shop[name].pk, is_inventory=True)
        assert (article.category, article.gender, article.is_active) == (category, gender, True), name
    # the price copied next to the vector is Oscar's strategy price (stock record, no tax)
    assert str(DetectedArticle.objects.get(product_id=shop["men_tee"].pk).price) == "19.99"
    # a product of no look category keeps no inventory vector: never a candidate
    mystery = ImageAnalysis.objects.get(product_id=shop["mystery"].pk)
    assert mystery.status == "skipped" and not DetectedArticle.objects.filter(product_id=shop["mystery"].pk,
                                                                              is_inventory=True).exists()


def test_oscars_product_page_shows_the_widget_with_oscar_products(client, shop):
    response = client.get(shop["men_look"].get_absolute_url())
    assert response.status_code == 200
    html = response.content.decode()
    assert "Product Information" in html  # Oscar's own detail page, the shop's override extends it
    assert 'class="btl"' in html and "Buy the look" in html
    rows = row_cards(html)
    assert shop["men_tee"].pk in rows["top"] and shop["men_shoe"].pk in rows["footwear"]
    assert shop["men_tee"].get_absolute_url() in html  # cards link to Oscar's product pages
    # gender never crossed, nothing without gender or look category
    for name in ("women_tee", "women_shoe", "dress", "no_gender_tee", "mystery"):
        assert shop[name].pk not in cards(html), name

    html = client.get(shop["women_look"].get_absolute_url()).content.decode()
    rows = row_cards(html)
    assert shop["women_tee"].pk in rows["top"] and shop["women_shoe"].pk in rows["footwear"]
    for name in ("men_tee", "men_shoe", "no_gender_tee", "mystery"):
        assert shop[name].pk not in cards(html), name


def test_a_product_page_without_a_full_shot_has_no_widget(client, shop):
    response = client.get(shop["men_tee"].get_absolute_url())
    assert response.status_code == 200 and 'class="btl"' not in response.content.decode()


def test_look_api_answers_with_oscar_products(client, shop):
    payload = look_api(client, shop["men_look"])
    assert payload["product"] == shop["men_look"].pk
    rows = api_rows(payload)
    assert rows["top"][:1] == [shop["men_tee"].pk] and shop["men_shoe"].pk in rows["footwear"]
    top = next(row for row in payload["rows"] if row["category"] == "top")
    card = next(card for card in top["recommendations"] if card["id"] == shop["men_tee"].pk)
    assert card["name"] == "Men's sports tee" and card["reference"] == shop["men_tee"].upc
    assert card["url"].endswith(shop["men_tee"].get_absolute_url())
    assert card["price"] == "19.99" and card["currency"] == "EUR" and card["gender"] == "Men"
    assert card["colour"] == "black" and card["look_category"] == "top" and card["article_type"] == "T-shirts"
    assert "/media/images/products/" in card["image"]
    every = {pk for pks in rows.values() for pk in pks}
    assert not every & {shop[name].pk for name in ("women_tee", "women_shoe", "dress", "no_gender_tee", "mystery")}
    # filters on the Oscar facts copied next to the vectors
    assert api_rows(look_api(client, shop["men_look"], max_price="10"))
    assert not {pk for pks in api_rows(look_api(client, shop["men_look"], max_price="10")).values() for pk in pks}
    assert shop["men_tee"].pk not in api_rows(look_api(client, shop["men_look"], exclude_colour="black")).get("top", [])


def test_look_api_hides_products_oscar_does_not_show(client, shop):
    product = shop["men_look"]
    product.is_public = False
    product.save()
    assert client.get(f"/api/products/{product.pk}/look/").status_code == 404
    missing = client.get("/api/products/999999/look/")
    assert missing.status_code == 404 and "detail" in missing.json()
    unknown = client.get("/api/no-such-endpoint/")  # Django's own 404, as JSON under /api/
    assert unknown.status_code == 404 and "detail" in unknown.json()


def test_search_by_photo_api_answers_with_oscar_products(client, shop):
    with open(MEN_LOOK, "rb") as photo:
        response = client.post("/api/search/", {"image": photo, "gender": "Men"})
    assert response.status_code == 200, response.content[:500]
    rows = {row["category"]: [card["id"] for card in row["recommendations"]] for row in response.json()["rows"]}
    assert shop["men_tee"].pk in rows["top"]
    found = {pk for pks in rows.values() for pk in pks}
    assert not found & {shop[name].pk for name in ("women_tee", "women_shoe", "dress", "no_gender_tee", "mystery")}
    with open(WOMEN_LOOK, "rb") as photo:
        response = client.post("/api/search/", {"image": photo, "gender": "Women", "category": "top"})
    assert [row["category"] for row in response.json()["rows"]] == ["top"]
    assert shop["women_tee"].pk in [card["id"] for card in response.json()["rows"][0]["recommendations"]]


def test_an_oscar_price_or_stock_change_shows_in_the_widget(client, shop, django_capture_on_commit_callbacks):
    url = shop["men_look"].get_absolute_url()
    html = client.get(url).content.decode()
    assert "€19.99" in html
    record = StockRecord.objects.get(product=shop["men_tee"])
    with django_capture_on_commit_callbacks(execute=True):
        record.price = "17.50"
        record.save()
    html = client.get(url).content.decode()
    assert "€17.50" in html and "€19.99" not in html
    assert str(DetectedArticle.objects.get(product_id=shop["men_tee"].pk).price) == "17.50"

    with django_capture_on_commit_callbacks(execute=True):
        record.num_in_stock = 0
        record.save()
    html = client.get(url).content.decode()
    assert shop["men_tee"].pk not in cards(html)  # sold out: Oscar's strategy says not available
    assert not DetectedArticle.objects.get(product_id=shop["men_tee"].pk).is_active

    with django_capture_on_commit_callbacks(execute=True):
        record.num_in_stock = 3
        record.save()
    assert shop["men_tee"].pk in cards(client.get(url).content.decode())


def test_an_attribute_or_category_change_is_synced(client, shop, django_capture_on_commit_callbacks):
    tee = shop["men_tee"]
    women = shop["catalogue"].genders.options.get(option="Women")
    with django_capture_on_commit_callbacks(execute=True):
        tee.attr.gender = women
        tee.save()
    article = DetectedArticle.objects.get(product_id=tee.pk, is_inventory=True)
    assert article.gender == "Women"
    assert tee.pk not in cards(client.get(shop["men_look"].get_absolute_url()).content.decode())
    assert tee.pk in row_cards(client.get(shop["women_look"].get_absolute_url()).content.decode())["top"]
    # withdrawn from sale in Oscar: no longer recommended
    with django_capture_on_commit_callbacks(execute=True):
        tee.is_public = False
        tee.save()
    assert not DetectedArticle.objects.get(product_id=tee.pk, is_inventory=True).is_active


def test_deleting_an_oscar_image_removes_its_vectors(client, shop, django_capture_on_commit_callbacks):
    shoe = shop["men_shoe"]
    image = shoe.images.get()
    assert DetectedArticle.objects.filter(analysis__image_id=image.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        image.delete()  # Oscar's ProductImage.delete (it renumbers the other images)
    assert not ImageAnalysis.objects.filter(image_id=image.pk).exists()
    assert not DetectedArticle.objects.filter(product_id=shoe.pk).exists()
    assert shoe.pk not in cards(client.get(shop["men_look"].get_absolute_url()).content.decode())

    with django_capture_on_commit_callbacks(execute=True):
        look = shop["catalogue"].product("Another look", "Looks", gender="Men", photo=MEN_LOOK)
    look_id = look.pk
    assert DetectedArticle.objects.filter(product_id=look_id).count() >= 2
    with django_capture_on_commit_callbacks(execute=True):
        look.delete()  # a product deleted: its analyses and vectors go with it
    assert not ImageAnalysis.objects.filter(product_id=look_id).exists()
    assert not DetectedArticle.objects.filter(product_id=look_id).exists()


def test_a_save_that_keeps_the_file_does_not_analyse_again(shop, django_capture_on_commit_callbacks, monkeypatch):
    from recommender import hooks

    analysed = []
    monkeypatch.setattr(hooks, "queue_analysis", lambda image_id: analysed.append(image_id) or True)
    image = shop["men_tee"].images.get()
    with django_capture_on_commit_callbacks(execute=True):
        image.caption = "A new caption"
        image.save()
        image.display_order = 0
        image.save(update_fields=["display_order"])
    assert analysed == []
    assert ImageAnalysis.objects.get(image_id=image.pk).status == "done"

    with django_capture_on_commit_callbacks(execute=True):  # a new file: analysed again, once
        image.original.save("replaced.jpg", ContentFile(TSHIRT.read_bytes()), save=False)
        image.save()
        image.caption = "again"
        image.save()
    assert analysed == [image.pk]


def test_products_the_adapter_cannot_place_never_appear_in_a_look_row(client, shop):
    """No gender attribute, or a class/category the mapping does not know: still sold, never in a look row of
    the wrong gender or category — and ``manage.py check`` counts them."""
    outsiders = {shop["no_gender_tee"].pk, shop["mystery"].pk}
    for look in ("men_look", "women_look"):
        for k in ("6", "24"):
            rows = api_rows(look_api(client, shop[look], k=k))
            assert not outsiders & {pk for pks in rows.values() for pk in pks}, (look, rows)
    assert client.get(shop["no_gender_tee"].get_absolute_url()).status_code == 200  # still sold
    from django.core.checks import run_checks

    messages = [message.msg for message in run_checks() if message.id == "recommender.W020"]
    assert messages and "no 'gender' attribute value" in messages[0] and "Gadgets" in messages[0]
    assert "'Looks'" not in messages[0]  # mapped to "" in the settings: a decision, not a problem


def test_a_broken_oscar_image_gives_a_failed_analysis_not_a_crash(client, shop, django_capture_on_commit_callbacks):
    product = shop["men_tee"]
    with django_capture_on_commit_callbacks(execute=True):
        image = add_image(product, NOT_AN_IMAGE, name="holiday.jpg")
    analysis = ImageAnalysis.objects.get(image_id=image.pk)
    assert analysis.status == "failed" and "not an image" in analysis.error, analysis.error
    assert client.get(product.get_absolute_url()).status_code == 200  # Oscar's page still renders
    assert client.get(f"/api/images/{image.pk}/analysis/").json()["status"] == "failed"

    with django_capture_on_commit_callbacks(execute=True):  # a file gone from storage: a message naming it
        gone = add_image(product, TSHIRT.read_bytes(), name="gone.jpg")
    gone.original.storage.delete(gone.original.name)
    call_command("analyse", "--product", str(product.pk), "--no-progress", verbosity=0)  # through the adapter
    analysis = ImageAnalysis.objects.get(image_id=gone.pk)
    assert analysis.status == "failed" and "missing" in analysis.error and "gone" in analysis.error


def test_the_recommenders_admin_lists_and_searches_oscar_images(admin_client, shop):
    response = admin_client.get("/admin/recommender/imageanalysis/", {"q": "sports tee"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Men&#x27;s sports tee" in html or "Men's sports tee" in html
    assert "Summer dress" not in html
    analysis = ImageAnalysis.objects.get(product_id=shop["men_look"].pk)
    assert admin_client.get(f"/admin/recommender/imageanalysis/{analysis.pk}/change/").status_code == 200
