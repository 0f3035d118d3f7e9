"""The query layer: look_for on real PostgreSQL + pgvector with chosen embeddings."""
import numpy as np
import pytest
from django.db import connection, transaction

from recommender.conf import settings as look_settings
from recommender.models import DetectedArticle
from recommender.filters import Filters
from recommender.looks import look_for
from recommender.queries import category_vote, configure_search, nearest_products

from look_factories import png_bytes, add_article, bulk_inventory, make_analysis, make_image, make_product, near, random_unit

pytestmark = pytest.mark.django_db


def rows_by_category(rows):
    return {row.category: row for row in rows}


def test_rows_follow_the_articles_in_category_order_and_skip_weak_ones(look, rng):
    bulk_inventory([{"category": "top", "embedding": random_unit(rng)} for _ in range(8)]
                   + [{"category": "footwear", "embedding": random_unit(rng)} for _ in range(8)]
                   + [{"category": "bag", "embedding": random_unit(rng)} for _ in range(8)])
    rows = look_for(look["product"])
    assert [row.category for row in rows] == ["top", "footwear"]  # the 0.05 bag is under MIN_ARTICLE_CONFIDENCE
    assert [row.label for row in rows] == ["Top", "Footwear"]
    footwear = rows[1]
    assert len(footwear.articles) == 2 and footwear.article.confidence == 0.8  # both shoes, one row
    for row in rows:
        assert len(row.recommendations) == look_settings.K
        distances = [p.distance for p in row.recommendations]
        assert distances == sorted(distances)
        assert {p.look_category for p in row.recommendations} == {row.category}


def test_each_category_has_its_own_confidence_floor(look, rng, settings):
    """A bag at 0.18 gets a row under the detector's bag floor (0.15); a bottom at 0.18 does not (0.25)."""
    bulk_inventory([{"category": c, "embedding": random_unit(rng)} for c in ("bag", "bottom") for _ in range(8)])
    add_article(look["analysis"], "bag", random_unit(rng), box=(0.7, 0.4, 0.9, 0.6), confidence=0.18)
    add_article(look["analysis"], "bottom", random_unit(rng), box=(0.25, 0.5, 0.75, 0.85), confidence=0.18)
    assert look_settings.floor("bag") == 0.15 and look_settings.floor("bottom") == 0.25
    rows = rows_by_category(look_for(look["product"]))
    assert set(rows) == {"top", "footwear", "bag"}
    assert rows["bag"].article.confidence == 0.18 and len(rows["bag"].recommendations) == look_settings.K
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "ARTICLE_FLOORS": {}}  # every category at 0.25
    assert set(rows_by_category(look_for(look["product"]))) == {"top", "footwear"}
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "ARTICLE_FLOORS": {"bottom": 0.1}}
    assert set(rows_by_category(look_for(look["product"]))) == {"top", "bottom", "footwear"}


def test_nearest_first_matches_exact_cosine(look, rng):
    query = look["top"].embedding
    embeddings = [random_unit(rng) for _ in range(300)]
    products = bulk_inventory([{"category": "top", "embedding": e} for e in embeddings])
    rows = rows_by_category(look_for(look["product"], k=8))
    got = [p.pk for p in rows["top"].recommendations]
    distances = 1 - np.array([float(np.dot(query, e)) for e in embeddings])
    expected = [products[i].pk for i in np.argsort(distances)[:8]]
    assert len(set(got) & set(expected)) >= 7  # approximate index: at most one miss
    assert got[0] == expected[0]


def test_vectors_of_another_embedder_are_never_candidates(look, rng):
    """After a model change, products not yet re-analysed (older vectors) wait for `reindex`."""
    query = look["top"].embedding
    stale = bulk_inventory([{"category": "top", "embedding": query, "model_version": "older-embedder"}
                            for _ in range(12)])
    current = bulk_inventory([{"category": "top", "embedding": near(query, rng, 0.8)} for _ in range(12)])
    rows = rows_by_category(look_for(look["product"], k=8))
    shown = {p.pk for p in rows["top"].recommendations}
    assert len(shown) == 8 and shown <= {p.pk for p in current}
    assert not shown & {p.pk for p in stale}


def test_gender_never_crosses(look, rng):
    query = look["top"].embedding
    # Women's tops identical to the article: nearest of all, never shown for a men's look.
    women = bulk_inventory([{"category": "top", "gender": "Women", "embedding": query} for _ in range(20)])
    girls = bulk_inventory([{"category": "top", "gender": "Girls", "embedding": query} for _ in range(5)])
    men = bulk_inventory([{"category": "top", "gender": "Men", "embedding": near(query, rng, 0.5)} for _ in range(4)])
    unisex = bulk_inventory([{"category": "top", "gender": "Unisex", "embedding": near(query, rng, 0.6)} for _ in range(4)])
    bulk_inventory([{"category": "top", "gender": "Men", "embedding": random_unit(rng)} for _ in range(50)])
    rows = rows_by_category(look_for(look["product"], k=8))
    shown = {p.pk for p in rows["top"].recommendations}
    assert len(shown) == 8
    assert not shown & {p.pk for p in women + girls}
    assert {p.gender for p in rows["top"].recommendations} <= {"Men", "Unisex"}
    assert {p.pk for p in men + unisex} <= shown  # the near ones come first

    # The other way round: a women's look gets Women and Unisex only.
    woman = make_product(category="", gender="Women", outfit=True)
    analysis = make_analysis(make_image(woman), full_shot=True)
    add_article(analysis, "top", query)
    rows = rows_by_category(look_for(woman, k=8))
    assert {p.gender for p in rows["top"].recommendations} <= {"Women", "Unisex"}
    assert {p.pk for p in women} & {p.pk for p in rows["top"].recommendations}


def test_one_percent_colour_filter_still_returns_k(look, rng):
    query = look["top"].embedding
    specs = [{"category": "top", "colour": "Blue", "embedding": near(query, rng, 0.3)} for _ in range(1980)]
    specs += [{"category": "top", "colour": "Purple", "embedding": random_unit(rng)} for _ in range(20)]  # 1%
    products = bulk_inventory(specs)
    purple = {p.pk for p in products if p.base_colour == "Purple"}
    rows = rows_by_category(look_for(look["product"], colours=["purple"]))
    got = rows["top"].recommendations
    assert len(got) == look_settings.K
    assert {p.pk for p in got} <= purple
    # Excluding a colour works the same way round.
    rows = rows_by_category(look_for(look["product"], exclude_colours="Blue"))
    assert len(rows["top"].recommendations) == look_settings.K
    assert {p.colour for p in rows["top"].recommendations} == {"purple"}


def test_iterative_scan_itself_finds_k_under_a_selective_filter(look, rng):
    """The approximate query alone (no exact fallback) keeps k thanks to hnsw.iterative_scan."""
    query = look["top"].embedding
    specs = [{"category": "top", "colour": "Blue", "embedding": near(query, rng, 0.3)} for _ in range(1980)]
    specs += [{"category": "top", "colour": "Purple", "embedding": random_unit(rng)} for _ in range(20)]
    bulk_inventory(specs)
    filters = Filters.build(k=6, colours=["purple"])
    genders = ("Men", "Unisex")
    with transaction.atomic(), connection.cursor() as cursor:
        # The planner rightly prefers the B-tree filter index for so few rows; make it take the HNSW index.
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("EXPLAIN " + _approx_sql(cursor, query, filters))
        assert "recommender_hnsw_top" in "\n".join(row[0] for row in cursor.fetchall())
        # Without the iterative scan the index stops after ef_search candidates: fewer than k survive the filter.
        assert len(nearest_products(cursor, query, category="top", genders=genders, filters=filters)) < 6
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
        configure_search(cursor, 18)
        cursor.execute("SHOW hnsw.iterative_scan")
        assert cursor.fetchone()[0] == "relaxed_order"
        cursor.execute("EXPLAIN " + _approx_sql(cursor, query, filters))
        plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "recommender_hnsw_top" in plan
        found = nearest_products(cursor, query, category="top", genders=genders, filters=filters)
    assert len(found) == 6


def _approx_sql(cursor, query, filters):
    vector = "[" + ",".join(f"{v:.7g}" for v in np.asarray(query).tolist()) + "]"
    return (
        "SELECT product_id FROM recommender_detectedarticle WHERE is_inventory AND is_active AND category = 'top' "
        f"AND base_colour = ANY(ARRAY['purple']) ORDER BY embedding <=> '{vector}'::vector LIMIT {filters.k * 3}"
    )


@pytest.mark.django_db(transaction=True)
def test_search_settings_stay_inside_their_transaction(look, rng):
    bulk_inventory([{"category": "top", "embedding": random_unit(rng)} for _ in range(10)])
    assert len(look_for(look["product"])[0].recommendations) == 6
    with connection.cursor() as cursor:
        cursor.execute("SHOW hnsw.iterative_scan")  # set_config(..., true) is SET LOCAL: gone after commit
        assert cursor.fetchone()[0] == "off"


def test_fewer_candidates_than_k_returns_all_of_them(look, rng):
    bulk_inventory([{"category": "top", "colour": "Olive", "embedding": random_unit(rng)} for _ in range(3)]
                   + [{"category": "top", "embedding": random_unit(rng)} for _ in range(100)])
    rows = rows_by_category(look_for(look["product"], colours=["Olive"]))
    assert len(rows["top"].recommendations) == 3


def test_product_itself_and_its_duplicates_are_excluded(db, rng):
    query = random_unit(rng)
    shirt = make_product(category="top", gender="Men")
    image = make_image(shirt)
    analysis = make_analysis(image, full_shot=True)
    add_article(analysis, "top", query, inventory=True)  # its own article, identical to the query
    # Another product showing the very same photo (same sha256): a duplicate.
    copy = make_product(category="top", gender="Men")
    copy_analysis = make_analysis(make_image(copy, content=image.read_bytes()), full_shot=False)
    add_article(copy_analysis, "top", query, inventory=True)
    others = bulk_inventory([{"category": "top", "embedding": near(query, rng, 0.4)} for _ in range(10)])
    rows = rows_by_category(look_for(shirt))
    shown = {p.pk for p in rows["top"].recommendations}
    assert shirt.pk not in shown and copy.pk not in shown
    assert shown <= {p.pk for p in others} and len(shown) == 6


def test_one_recommendation_per_product(look, rng):
    query = look["top"].embedding
    product = make_product(category="top", gender="Men")
    for position in range(3):  # three photos of one product, all very near the article
        analysis = make_analysis(make_image(product, content=png_bytes(seed=position), position=position,
                                            is_primary=position == 0), full_shot=False)
        add_article(analysis, "top", near(query, rng, 0.01), inventory=True)
    bulk_inventory([{"category": "top", "embedding": random_unit(rng)} for _ in range(30)])
    recs = rows_by_category(look_for(look["product"]))["top"].recommendations
    ids = [p.pk for p in recs]
    assert ids[0] == product.pk and ids.count(product.pk) == 1 and len(ids) == 6


def test_inactive_products_are_excluded(look, rng, django_capture_on_commit_callbacks):
    query = look["top"].embedding
    hidden = make_product(category="top", gender="Men")
    analysis = make_analysis(make_image(hidden), full_shot=False)
    add_article(analysis, "top", query, inventory=True)
    bulk_inventory([{"category": "top", "embedding": random_unit(rng)} for _ in range(20)])
    assert hidden.pk in {p.pk for p in rows_by_category(look_for(look["product"]))["top"].recommendations}
    with django_capture_on_commit_callbacks(execute=True):
        hidden.is_active = False
        hidden.save()  # catalog's product_changed → the articles' copy of the flag follows
    assert not DetectedArticle.objects.get(product=hidden).is_active
    assert hidden.pk not in {p.pk for p in rows_by_category(look_for(look["product"]))["top"].recommendations}
    # Bulk-created inactive products are excluded too.
    bulk_inventory([{"category": "top", "embedding": query, "active": False} for _ in range(5)])
    assert all(p.is_available for p in rows_by_category(look_for(look["product"]))["top"].recommendations)


def test_price_range_and_bad_parameters(look, rng):
    bulk_inventory([{"category": "top", "price": price, "embedding": random_unit(rng)} for price in range(5, 105)])
    recs = rows_by_category(look_for(look["product"], min_price="30", max_price=40))["top"].recommendations
    assert len(recs) == 6 and all(30 <= p.price <= 40 for p in recs)
    with pytest.raises(ValueError, match="min_price"):
        look_for(look["product"], min_price="cheap")
    with pytest.raises(ValueError, match="k must be between"):
        look_for(look["product"], k=0)
    with pytest.raises(ValueError, match="greater than max_price"):
        look_for(look["product"], min_price=50, max_price=10)


def test_no_full_shot_no_rows(db, rng):
    shirt = make_product(category="top")
    analysis = make_analysis(make_image(shirt), full_shot=False)
    add_article(analysis, "top", random_unit(rng), inventory=True)
    assert look_for(shirt) == []


def test_all_article_rows_of_a_look_cost_one_query(look, rng, django_assert_num_queries):
    bulk_inventory([{"category": c, "embedding": random_unit(rng)} for c in ("top", "footwear") for _ in range(30)])
    # ONE statement: the articles with their analyses and photos (the adapter orders them: image_order) and the
    # products of every article row (its own search settings inside; the products showing the same photo
    # excluded inside it); then the cards' products with their first image; no transaction of its own
    with django_assert_num_queries(2):
        rows = look_for(look["product"])
        for row in rows:
            for product in row.recommendations:
                assert product.image_url  # prefetched: no query per card


def test_a_products_full_shots_come_in_the_shops_image_order_and_never_another_products(rng):
    """The photos are read with their articles and ordered by the adapter's image_order (primary, position)."""
    product = make_product(category="", gender="Men", outfit=True, colour="")
    second = make_image(product, content=png_bytes(300, 600, seed=11), position=2, is_primary=False)
    first = make_image(product, content=png_bytes(300, 600, seed=12), position=5, is_primary=True)
    third = make_image(product, content=png_bytes(300, 600, seed=13), position=7, is_primary=False)
    for image in (second, first, third):
        add_article(make_analysis(image, full_shot=True), "top", random_unit(rng))
    bulk_inventory([{"category": "top", "embedding": random_unit(rng)} for _ in range(8)])
    rows = look_for(product)
    assert [row.image.pk for row in rows] == [first.pk, second.pk, third.pk]
    # a photo moved to another product no longer shows in this one's look
    other = make_product(category="", gender="Men", outfit=True, colour="")
    third.product = other
    third.save()
    assert [row.image.pk for row in look_for(product)] == [first.pk, second.pk]


def test_category_vote_of_a_photo_with_no_article(db, rng):
    """search_by_photo's whole-photo row: the category most common among the nearest inventory articles."""
    shoe = random_unit(rng)
    filters = Filters.build(k=6)
    with connection.cursor() as cursor:
        assert category_vote(cursor, shoe, genders=("Women", "Unisex"), filters=filters) is None  # no inventory
    bulk_inventory([{"category": "footwear", "gender": "Women", "embedding": near(shoe, rng, 0.2)} for _ in range(7)]
                   + [{"category": "bag", "gender": "Women", "embedding": near(shoe, rng, 0.25)} for _ in range(3)]
                   + [{"category": "top", "gender": "Women", "embedding": random_unit(rng)} for _ in range(40)]
                   + [{"category": "bag", "gender": "Men", "embedding": near(shoe, rng, 0.05)} for _ in range(12)])
    with connection.cursor() as cursor:
        assert category_vote(cursor, shoe, genders=("Women", "Unisex"), filters=filters) == "footwear"
        assert category_vote(cursor, shoe, genders=("Men", "Unisex"), filters=filters) == "bag"


def test_look_rows_search_with_look_ef_search_and_fall_back_to_ef_search(look, rng, settings):
    """The product page's statement sets hnsw.ef_search from LOOK_EF_SEARCH (at least its candidates), EF_SEARCH
    when that is None; a search by photo (search_many) keeps EF_SEARCH."""
    from django.test.utils import CaptureQueriesContext

    bulk_inventory([{"category": "top", "embedding": random_unit(rng)} for _ in range(8)])

    def ef_of_look_statement():
        with CaptureQueriesContext(connection) as captured:
            rows = look_for(look["product"])
        statement = next(q["sql"] for q in captured.captured_queries if "look_hits" in q["sql"])
        assert rows and "set_config('hnsw.ef_search', '" in statement
        return int(statement.split("set_config('hnsw.ef_search', '", 1)[1].split("'", 1)[0])

    assert ef_of_look_statement() == look_settings.EF_SEARCH == 200  # LOOK_EF_SEARCH None by default
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "LOOK_EF_SEARCH": 120}
    assert ef_of_look_statement() == 120
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "LOOK_EF_SEARCH": 10}
    assert ef_of_look_statement() == look_settings.COLOUR_CANDIDATES  # never below the candidates it fetches
