"""The whole journey with the real pipeline and the committed weights: upload → analysis → widget, API, search.

Skipped (with the reason) while the model weights are not in the repository.
"""
import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from catalog.models import Product, ProductImage
from look_factories import demo_look_photo, make_image, make_product
from recommender.models import DetectedArticle, ImageAnalysis
from recommender.tasks import analyse_image

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo_data"

pytestmark = [
    pytest.mark.slow,
]


@pytest.fixture
def shop(transactional_db):
    """40 demo catalogue products analysed with `manage.py analyse --pending`, plus one uploaded street look."""
    call_command("import_catalogue", "--styles", str(DEMO / "products" / "styles.csv"),
                 "--images", str(DEMO / "products" / "images"), "--limit", "40")
    assert ImageAnalysis.objects.filter(status="queued").count() == ProductImage.objects.count() > 0
    call_command("analyse", "--pending", "--no-progress")
    outfit = make_product(category="", outfit=True, gender="", colour="")
    image = make_image(outfit, content=demo_look_photo().read_bytes())  # eager: analysed right after commit
    return {"outfit": outfit, "image": image}


def test_an_uploaded_full_shot_becomes_a_done_analysis_and_the_page_shows_rows(shop, client):
    analysis = ImageAnalysis.objects.get(image=shop["image"])
    assert analysis.status == "done", analysis.error
    assert analysis.is_full_shot and analysis.gender in {"Men", "Women"} and analysis.gender_source == "predicted"
    categories = set(analysis.articles.values_list("category", flat=True))
    assert categories & {"top", "dress"} and "footwear" in categories, categories
    for article in analysis.articles.all():
        assert 0 <= article.x1 < article.x2 <= 1 and 0 <= article.y1 < article.y2 <= 1
        assert article.model_version == analysis.model_versions["embedder"] and not article.is_inventory
    assert set(analysis.timings) >= {"decode", "pose", "gender", "detect", "embed", "total"}

    # the analysis stored the candidate lists of the look's rows (LOOK_CANDIDATES, on by default), which the page reads
    from recommender.candidates import look_row_articles
    from recommender.models import LookCandidates

    row_articles = look_row_articles([shop["outfit"].pk])
    assert row_articles and set(LookCandidates.objects.values_list("article_id", flat=True)) >= set(row_articles)

    html = client.get(shop["outfit"].get_absolute_url()).content.decode()
    rows = re.findall(r'class="btl__row" id="btl-row-[^"]+" data-btl-key="[^"]+" data-category="(\w+)"', html)
    assert rows and set(rows) <= categories
    assert 'class="btl__card"' in html


def test_every_active_catalogue_product_is_findable(shop):
    looked = Product.objects.exclude(look_category="").exclude(master_category="Outfit")
    inventory = DetectedArticle.objects.filter(is_inventory=True)
    assert set(inventory.values_list("product_id", flat=True)) == set(looked.values_list("pk", flat=True))
    for article in inventory.select_related("product"):
        assert article.category == article.product.look_category
        assert article.gender == article.product.gender
    outside = Product.objects.filter(look_category="").exclude(master_category="Outfit")
    for product in outside:
        assert ImageAnalysis.objects.get(image__product=product).status in {"skipped", "done"}


def test_reanalysis_is_idempotent(shop):
    image = shop["image"]
    before = sorted(DetectedArticle.objects.filter(analysis__image=image).values_list("category", flat=True))
    analyse_image.delay(image.pk).get()
    analyse_image.delay(image.pk).get()
    analysis = ImageAnalysis.objects.get(image=image)
    after = sorted(analysis.articles.values_list("category", flat=True))
    assert after == before and analysis.attempts == 3


def test_reindex_reanalyses_only_what_another_model_made(shop, capsys):
    call_command("reindex", "--dry-run")
    assert "Everything is up to date." in capsys.readouterr().out
    stale = ImageAnalysis.objects.filter(status="done").exclude(image=shop["image"]).first()
    stale.model_versions = {**stale.model_versions, "embedder": "an-older-embedder"}
    stale.save()
    call_command("reindex", "--no-progress")
    out = capsys.readouterr().out
    assert "1 image(s) to re-analyse (embedder changed: 1)" in out
    stale.refresh_from_db()
    assert stale.model_versions["embedder"] != "an-older-embedder"


def test_reindex_reanalyses_full_shots_made_before_the_category_head_checked_them(shop, capsys):
    full = ImageAnalysis.objects.filter(status="done", is_full_shot=True).first()
    assert "category_head" in full.model_versions  # the head checked its detections
    full.model_versions = {k: v for k, v in full.model_versions.items() if k != "category_head"}
    full.save()
    call_command("reindex", "--dry-run")
    assert "1 image(s) to re-analyse (category_head changed: 1)" in capsys.readouterr().out


def test_search_by_photo_api_and_page(shop, client):
    photo = demo_look_photo().read_bytes()
    response = client.post("/api/search/", {"image": SimpleUploadedFile("me.jpg", photo, content_type="image/jpeg")})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["is_full_shot"] and body["gender_source"] == "predicted" and body["rows"]
    for row in body["rows"]:
        assert all(card["look_category"] == row["category"] for card in row["recommendations"])
        genders = {card["gender"] for card in row["recommendations"]}
        assert genders <= {body["gender"], "Unisex"}
    response = client.post("/api/search/", {"image": SimpleUploadedFile("me.jpg", photo), "gender": "Men"})
    assert response.json()["gender"] == "Men" and response.json()["gender_source"] == "visitor"
    page = client.post("/search/", {"photo": SimpleUploadedFile("me.jpg", photo), "gender": ""})
    html = page.content.decode()
    assert page.status_code == 200 and "data:image/jpeg;base64," in html and 'class="btl__row"' in html


def test_a_photo_with_no_article_gets_one_row_of_the_category_its_nearest_products_vote_for(shop):
    """A close-up in which the detector finds nothing (here a plain swatch of cloth colour) is searched as one
    article whose look category comes from the shop's nearest products, not as an unlabelled mixed row."""
    import io

    from PIL import Image

    from recommender.photo_search import search_by_photo

    buffer = io.BytesIO()
    Image.new("RGB", (400, 400), (40, 60, 140)).save(buffer, format="JPEG")
    result = search_by_photo(buffer.getvalue(), gender="Women")
    assert len(result.rows) == 1
    row = result.rows[0]
    assert row.article.is_whole_image and row.category and row.label != "Similar products"
    assert row.recommendations and {card.look_category for card in row.recommendations} == {row.category}


def _shoe_shop_and_the_top_half_of_a_street_photo():
    """(JPEG bytes, embedder version): a shop of 12 shoes and one top — whatever a photo looks like, its 10 nearest
    articles vote footwear — and the upper half of a street photo (its top; not a full shot)."""
    import io

    import numpy as np
    from PIL import Image

    from look_factories import bulk_inventory, random_unit
    from recommender import pipeline

    rng = np.random.default_rng(7)
    version = pipeline.current_versions()["embedder"]
    bulk_inventory([{"category": "footwear", "embedding": random_unit(rng), "model_version": version}
                    for _ in range(12)] + [{"category": "top", "embedding": random_unit(rng), "model_version": version}])
    street = Image.open(ROOT / "tests" / "fixtures" / "street_full_body.jpg").convert("RGB")
    buffer = io.BytesIO()
    street.crop((0, 0, street.width, int(street.height * 0.55))).save(buffer, format="JPEG")
    return buffer.getvalue(), version


def test_a_close_up_with_an_article_found_also_gets_the_row_its_whole_photo_votes_for(db, settings):
    """A photo that is not a full shot but in which the detector found something (here the upper half of a street
    photo: its top) also gets the row of the category the shop's nearest articles vote for, when no box gave
    one — a bag held against a coat is found as the coat. A visitor's own category choice has no such row."""
    from recommender.photo_search import search_by_photo

    settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": "catalog.adapter.CatalogAdapter", "WHOLE_PHOTO_CATEGORY": "vote"}
    photo, _ = _shoe_shop_and_the_top_half_of_a_street_photo()

    result = search_by_photo(photo, gender="Men")
    assert not result.is_full_shot
    found = [row for row in result.rows if not row.article.is_whole_image]
    whole = [row for row in result.rows if row.article.is_whole_image]
    assert found and "footwear" not in {row.category for row in found}, [row.category for row in result.rows]
    assert [row.category for row in whole] == ["footwear"] and whole[0].label != "Similar products"
    assert whole[0].recommendations and {card.look_category for card in whole[0].recommendations} == {"footwear"}

    chosen = search_by_photo(photo, gender="Men", category="top")
    assert [row.category for row in chosen.rows] == ["top"] and not chosen.rows[0].article.is_whole_image


def test_the_whole_photo_category_comes_from_the_embedders_category_head(db, settings):
    """With the default ``WHOLE_PHOTO_CATEGORY = "head"``, the category of a photo searched as a whole is what the
    embedder's category head (``ml.category_head``) reads in it, not what the shop's nearest articles are: in a shop
    of shoes a photo of a top is not called footwear. A head of another embedder version is not used."""
    import numpy as np

    from ml.category_head import default_head
    from recommender import pipeline
    from recommender.photo_search import predicted_category, search_by_photo

    head = default_head()
    photo, version = _shoe_shop_and_the_top_half_of_a_street_photo()
    assert head.available_for(version), "the committed category head belongs to the committed embedder"

    result = search_by_photo(photo, gender="Men")
    assert not result.is_full_shot and "footwear" not in {row.category for row in result.rows}
    embedding = np.asarray(pipeline.analyse(photo, detect=True).image_embedding, np.float32)
    from recommender.filters import Filters

    filters = Filters.build(None, None, None, None, None)
    assert predicted_category(embedding, "Men", version, filters) == head.predict([embedding])[0][0] == "top"
    # another embedder: not the head's, so the vote — over that embedder's articles, of which the shop has none
    assert predicted_category(embedding, "Men", "another-embedder", filters) is None
    settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": "catalog.adapter.CatalogAdapter", "WHOLE_PHOTO_CATEGORY": "vote"}
    assert predicted_category(embedding, "Men", version, filters) == "footwear"
    settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": "catalog.adapter.CatalogAdapter", "WHOLE_PHOTO_CATEGORY": "nearest"}
    from django.core.management.base import SystemCheckError

    with pytest.raises(SystemCheckError, match="WHOLE_PHOTO_CATEGORY"):
        call_command("check")
