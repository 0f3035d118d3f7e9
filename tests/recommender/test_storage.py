"""Storing an analysis: inventory rules, idempotent replacement, denormalised copies."""
import numpy as np

from catalog.adapter import CatalogAdapter
import pytest
from ml.pipeline import Analysis, Article

from look_factories import make_image, make_product, random_unit
from recommender.analysis import build_articles, start, store
from recommender.models import DetectedArticle, ImageAnalysis

pytestmark = pytest.mark.django_db


def result(rng, *, full_shot, articles=(), gender="Men"):
    return Analysis(
        width=300, height=600, is_full_shot=full_shot, pose_score=0.9 if full_shot else 0.1, keypoints=[],
        gender=gender, gender_confidence=1.0, gender_source="product",
        articles=[Article(category=c, confidence=conf, box=box, embedding=random_unit(rng)) for c, conf, box in articles],
        image_embedding=random_unit(rng), timings={"decode": 1.0, "pose": 2.0, "total": 3.0},
        model_versions={"pose": "p1", "embedder": "e1"},
    )


LOOK = [("top", 0.9, (0.2, 0.1, 0.8, 0.5)), ("bottom", 0.8, (0.25, 0.5, 0.75, 0.85)),
        ("footwear", 0.7, (0.3, 0.88, 0.45, 0.99)), ("footwear", 0.6, (0.55, 0.88, 0.7, 0.99))]


def test_full_shot_of_a_top_stores_every_article_and_marks_its_own(rng):
    shirt = make_product(category="top", colour="Navy Blue", price="35.00")
    image = make_image(shirt)
    analysis = store(start(image.pk), image, result(rng, full_shot=True, articles=LOOK))
    rows = list(analysis.articles.order_by("-confidence"))
    assert analysis.status == "done" and analysis.is_full_shot
    assert [r.category for r in rows] == ["top", "bottom", "footwear", "footwear"]
    assert [r.is_inventory for r in rows] == [True, False, False, False]
    assert {r.base_colour for r in rows} == {"navy blue"} and {str(r.price) for r in rows} == {"35.00"}
    assert {r.model_version for r in rows} == {"e1"}
    assert analysis.model_versions == {"pose": "p1", "embedder": "e1"} and analysis.attempts == 1


def test_articles_under_their_category_floor_are_not_stored(rng):
    """The pipeline hands over detections down to the lowest floor (bag, footwear 0.15); each category keeps its own."""
    skirt = make_product(category="bottom", gender="Women")
    image = make_image(skirt)
    weak = [("bottom", 0.2, (0.2, 0.5, 0.8, 0.8)), ("bag", 0.2, (0.7, 0.4, 0.9, 0.6)),
            ("footwear", 0.1, (0.3, 0.88, 0.45, 0.99))]
    analysis = store(start(image.pk), image, result(rng, full_shot=True, articles=weak, gender="Women"))
    rows = list(analysis.articles.all())
    # the 0.2 bottom is under the bottom floor: not the product's own article, which falls back to the whole image
    assert sorted((r.category, r.is_whole_image) for r in rows) == [("bag", False), ("bottom", True)]


def test_catalogue_photo_is_findable_through_its_whole_image(rng):
    shoe = make_product(category="footwear", gender="Women")
    image = make_image(shoe)
    picture = result(rng, full_shot=False, gender="Women")
    analysis = store(start(image.pk), image, picture)
    (row,) = analysis.articles.all()
    assert row.is_inventory and row.is_whole_image and row.category == "footwear" and row.gender == "Women"
    assert (row.x1, row.y1, row.x2, row.y2) == (0, 0, 1, 1)
    assert np.allclose(row.embedding, picture.image_embedding)


def test_full_shot_without_its_own_category_falls_back_to_the_whole_image(rng):
    bag = make_product(category="bag")
    image = make_image(bag)
    analysis = store(start(image.pk), image, result(rng, full_shot=True, articles=LOOK))
    inventory = analysis.articles.filter(is_inventory=True)
    assert inventory.count() == 1 and inventory.get().is_whole_image and inventory.get().category == "bag"
    assert analysis.articles.count() == 5


def test_outfits_and_accessories_are_never_inventory(rng):
    look = make_product(category="", outfit=True)
    analysis = store(start(make_image(look).pk), look.images.get(), result(rng, full_shot=True, articles=LOOK))
    assert analysis.articles.count() == 4 and not analysis.articles.filter(is_inventory=True).exists()
    watch = make_product(category="")
    image = make_image(watch)
    analysis = store(start(image.pk), image, result(rng, full_shot=False))
    assert analysis.status == "skipped" and analysis.articles.count() == 0


def test_storing_again_replaces_instead_of_adding(rng):
    shirt = make_product(category="top")
    image = make_image(shirt)
    for attempt in range(1, 4):
        analysis = store(start(image.pk), image, result(rng, full_shot=True, articles=LOOK))
        assert analysis.attempts == attempt
        assert DetectedArticle.objects.filter(analysis__image=image).count() == 4
    assert ImageAnalysis.objects.filter(image=image).count() == 1


def test_a_result_for_an_outdated_file_is_not_written(rng):
    shirt = make_product(category="top")
    image = make_image(shirt)
    analysis = start(image.pk)
    stored = store(analysis, image, result(rng, full_shot=True, articles=LOOK), version="0" * 64)
    assert stored.status == "running" and stored.articles.count() == 0


def test_wrong_embedding_dimension_is_refused_with_a_clear_message(rng):
    from recommender.analysis import AnalysisFailed

    shirt = make_product(category="top")
    image = make_image(shirt)
    bad = result(rng, full_shot=False)
    bad.image_embedding = np.ones(512, dtype=np.float32)
    with pytest.raises(AnalysisFailed, match="512-dimensional"):
        build_articles(start(image.pk), shirt.pk, CatalogAdapter().describe(shirt), bad)
