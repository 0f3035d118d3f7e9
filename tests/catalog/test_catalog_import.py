"""manage.py import_catalogue / import_looks: good rows, bad rows with line numbers, idempotence, images."""
import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import Product, ProductImage
from catalog.pricing import suggested_price

from catalog_helpers import DEMO_DATA, image_bytes, media_files, noisy_jpeg

WRITE_SQL = ("INSERT", "UPDATE", "DELETE")


def run(command, *args):
    out, err = io.StringIO(), io.StringIO()
    call_command(command, *args, stdout=out, stderr=err, verbosity=0)
    return out.getvalue(), err.getvalue()


def import_styles(path, images):
    return run("import_catalogue", "--styles", str(path), "--images", str(images))


GOOD_ROWS = [
    "1001,Women,Apparel,Topwear,Rompers,Blue,Summer,2012,Casual,Blue Denim Romper",
    "1002,Men,Footwear,Shoes,Casual Shoes,Black,Fall,2011,Casual,Black Canvas Sneakers",
    '1003,Unisex,Accessories,Watches,Watches,Silver,Winter,,NA,"Steel Watch, 40 mm"',
]


@pytest.mark.django_db
def test_good_rows_become_products_with_their_primary_image(styles_dir, settings):
    path, images = styles_dir(GOOD_ROWS, {"1001": image_bytes((60, 80)), "1002": image_bytes(), "1003": image_bytes()})

    out, err = import_styles(path, images)

    assert "3 created, 0 updated, 0 unchanged, 0 skipped; 3 images attached" in out
    romper = Product.objects.get(sku="1001")
    assert (romper.name, romper.gender, romper.master_category, romper.sub_category, romper.article_type) == (
        "Blue Denim Romper", "Women", "Apparel", "Topwear", "Rompers")
    assert (romper.base_colour, romper.season, romper.year, romper.usage) == ("Blue", "Summer", 2012, "Casual")
    assert romper.look_category == "dress"  # articleType Rompers wins over subCategory Topwear
    assert romper.slug == "blue-denim-romper"
    assert romper.price == suggested_price("Rompers", "1001") and romper.price > 0
    watch = Product.objects.get(sku="1003")
    assert watch.name == "Steel Watch, 40 mm" and watch.year is None and watch.usage == "" and watch.look_category == ""
    image = romper.images.get()
    assert image.is_primary and (image.width, image.height) == (60, 80) and len(image.sha256) == 64
    assert image.read_bytes() == (images / "1001.jpg").read_bytes()
    assert len(media_files(settings)) == 3


@pytest.mark.django_db
def test_bad_rows_are_reported_with_line_numbers_and_the_rest_is_imported(styles_dir):
    lines = [
        "2001,Women,Apparel,Topwear,Tops,Red,Summer,2012,Casual,Good Red Top",            # line 2
        "2002,Women,Apparel,Topwear",                                                     # 3: missing columns
        "2003,Alien,Apparel,Topwear,Tops,Red,Summer,2012,Casual,Strange Top",             # 4: unknown gender
        "2001,Women,Apparel,Topwear,Tops,Red,Summer,2012,Casual,Same Id Again",           # 5: duplicate id
        b"2005,Women,Apparel,Topwear,Tops,Red,Summer,2012,Casual,Caf\xe9 Top",            # 6: not UTF-8
        "2006,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,",                      # 7: empty name
        "2007,Men,Apparel,Topwear,Tshirts,Blue,Summer,twenty,Casual,Year Words Tee",      # 8: bad year
        "2008,Men,Apparel,Bottomwear,Jeans,Blue,Fall,2013,Casual,Good Blue Jeans",        # 9
    ]
    path, images = styles_dir(lines, {"2001": image_bytes(), "2008": image_bytes()})

    out, err = import_styles(path, images)

    assert sorted(Product.objects.values_list("sku", flat=True)) == ["2001", "2008"]
    assert Product.objects.get(sku="2001").name == "Good Red Top"
    assert "2 created, 0 updated, 0 unchanged, 6 skipped" in out
    assert "line 3: expected 10 columns, found 4" in err
    assert "line 4: id 2003: unknown gender 'Alien'" in err
    assert "line 5: id 2001: duplicate id (first seen on line 2)" in err
    assert "line 6: not valid UTF-8" in err
    assert "line 7: id 2006: empty productDisplayName" in err
    assert "line 8: id 2007: bad year 'twenty'" in err
    assert "6 errors" in out


@pytest.mark.django_db
def test_second_run_writes_nothing(styles_dir, settings):
    path, images = styles_dir(GOOD_ROWS, {"1001": image_bytes(), "1002": image_bytes(), "1003": image_bytes()})
    import_styles(path, images)
    files_before = media_files(settings)
    stamps_before = dict(Product.objects.values_list("sku", "updated_at"))

    with CaptureQueriesContext(connection) as queries:
        out, err = import_styles(path, images)

    writes = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith(WRITE_SQL)]
    assert writes == []
    assert "0 created, 0 updated, 3 unchanged, 0 skipped; 0 images attached, 3 already attached; 0 errors" in out
    assert media_files(settings) == files_before
    assert dict(Product.objects.values_list("sku", "updated_at")) == stamps_before
    assert ProductImage.objects.count() == 3


@pytest.mark.django_db
def test_changed_row_updates_the_product_and_a_new_photo_becomes_primary(styles_dir):
    path, images = styles_dir(GOOD_ROWS[:1], {"1001": image_bytes(colour=(1, 2, 3))})
    import_styles(path, images)
    path, images = styles_dir([GOOD_ROWS[0].replace("Blue Denim Romper", "Indigo Romper")],
                              {"1001": image_bytes(colour=(200, 200, 10))})

    out, _ = import_styles(path, images)

    product = Product.objects.get(sku="1001")
    assert "0 created, 1 updated" in out and "1 images attached" in out
    assert product.name == "Indigo Romper" and product.slug == "indigo-romper"
    primary = [image for image in product.images.all() if image.is_primary]
    assert product.images.count() == 2 and len(primary) == 1
    assert primary[0].read_bytes() == (images / "1001.jpg").read_bytes()


@pytest.mark.django_db
def test_missing_and_broken_images_are_reported_and_the_products_kept(styles_dir, settings):
    whole = noisy_jpeg()
    truncated = whole[: len(whole) // 2]
    path, images = styles_dir(GOOD_ROWS[:2], {"1002": truncated})

    out, err = import_styles(path, images)

    assert Product.objects.filter(sku__in=["1001", "1002"]).count() == 2
    assert ProductImage.objects.count() == 0 and media_files(settings) == []
    assert f"line 2: image missing: {images / '1001.jpg'}" in err
    assert "line 3: broken image" in err and "truncated or corrupt" in err
    assert "2 created" in out and "2 errors" in out


@pytest.mark.django_db
def test_new_images_are_announced_after_commit(styles_dir, django_capture_on_commit_callbacks, monkeypatch):
    from catalog import signals

    announced = []
    monkeypatch.setattr(signals.product_image_changed, "send",
                        lambda sender, **kwargs: announced.append(kwargs["image"].product.sku))
    monkeypatch.setattr(signals.product_changed, "send", lambda sender, **kwargs: None)
    path, images = styles_dir(GOOD_ROWS[:2], {"1001": image_bytes(), "1002": image_bytes()})

    with django_capture_on_commit_callbacks() as callbacks:
        import_styles(path, images)
    assert announced == []  # nothing before the commit
    for callback in callbacks:
        callback()

    assert sorted(announced) == ["1001", "1002"]


@pytest.mark.django_db
def test_header_without_required_columns_stops_with_a_clear_error(styles_dir):
    path, images = styles_dir(["1,Men,x"], header="id,gender,name")
    with pytest.raises(CommandError, match="header lacks the columns masterCategory"):
        import_styles(path, images)


@pytest.mark.django_db
def test_limit_and_the_committed_demo_subset():
    out, err = run("import_catalogue", "--styles", str(DEMO_DATA / "products/styles.csv"),
                   "--images", str(DEMO_DATA / "products/images"), "--limit", "12")
    assert "12 created" in out and "12 images attached" in out and "0 errors" in out
    assert Product.objects.count() == 12
    assert all(product.images.count() == 1 for product in Product.objects.all())


@pytest.mark.django_db
def test_import_looks_makes_outfit_products_once(tmp_path, settings):
    photos = tmp_path / "looks"
    photos.mkdir()
    (photos / "0007.jpg").write_bytes(image_bytes((60, 120)))
    (photos / "0042.png").write_bytes(image_bytes((60, 120), "PNG", (9, 9, 9)))
    (photos / "notes.txt").write_text("not a photo")

    out, _ = run("import_looks", "--photos", str(photos))
    again, _ = run("import_looks", "--photos", str(photos))

    assert "2 created" in out and "2 images attached" in out
    assert "0 created, 0 updated, 2 unchanged" in again and "0 images attached" in again
    look = Product.objects.get(sku="look-0007")
    assert look.name == "Street look 0007" and look.is_outfit and look.master_category == "Outfit"
    assert look.gender == "" and look.price == 0 and look.is_active and look.look_category == ""
    assert look.images.get().file.name.endswith(".jpg")
    assert Product.objects.get(sku="look-0042").images.get().file.name.endswith(".png")
    assert len(media_files(settings)) == 2


@pytest.mark.django_db
def test_demo_admin_creates_then_resets_the_superuser(monkeypatch):
    from django.contrib.auth import get_user_model

    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "first-Secret-1")
    out, _ = run("demo_admin")
    user = get_user_model().objects.get(username="admin")
    assert user.is_superuser and user.is_staff and user.check_password("first-Secret-1")
    assert "http://127.0.0.1:8000/admin/" in out and "Password: first-Secret-1" in out

    monkeypatch.delenv("DEMO_ADMIN_PASSWORD")
    out, _ = run("demo_admin")
    password = out.split("Password: ")[1].strip()
    user.refresh_from_db()
    assert len(password) >= 12 and user.check_password(password) and not user.check_password("first-Secret-1")
