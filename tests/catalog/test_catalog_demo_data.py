"""The committed demo subset: small, balanced, complete, and its sources named."""
import csv
from collections import Counter

from PIL import Image

from recommender.taxonomy import look_category_for

from catalog_helpers import DEMO_DATA

MAX_BYTES = 12 * 1024 * 1024


def rows():
    with open(DEMO_DATA / "products" / "styles.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_demo_data_is_small():
    size = sum(path.stat().st_size for path in DEMO_DATA.rglob("*") if path.is_file())
    assert size <= MAX_BYTES


def test_catalogue_subset_is_balanced_and_every_product_has_its_photo():
    products = rows()
    assert 550 <= len(products) <= 650
    assert len({row["id"] for row in products}) == len(products)
    groups = Counter((row["gender"], look_category_for(row["subCategory"], row["articleType"])) for row in products)
    for gender in ("Men", "Women"):
        for look in ("top", "bottom", "footwear", "bag"):
            assert groups[(gender, look)] >= 40, (gender, look)
    assert sum(count for (gender, look), count in groups.items() if look == "dress") >= 30
    assert sum(count for (gender, _), count in groups.items() if gender == "Unisex") >= 20
    assert sum(count for (_, look), count in groups.items() if look == "") >= 10
    for row in products:
        assert (DEMO_DATA / "products" / "images" / f"{row['id']}.jpg").is_file(), row["id"]


def test_look_photos_are_full_body_portraits_of_limited_size():
    photos = sorted((DEMO_DATA / "looks").glob("*.jpg"))
    assert 30 <= len(photos) <= 60
    for path in photos:
        with Image.open(path) as image:
            assert max(image.size) <= 600 and image.height > image.width


def test_readme_names_the_sources_and_the_script():
    readme = (DEMO_DATA / "README.md").read_text(encoding="utf-8")
    for text in ("Fashion Product Images (Small)", "Param Aggarwal", "Clothing Co-Parsing", "Apache-2.0",
                 "scripts/make_demo_subset.py"):
        assert text in readme
