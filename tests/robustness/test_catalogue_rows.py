"""Bad catalogue files beyond those of tests/catalog: quoting errors, NUL bytes, over-long fields, Windows
line endings and a BOM, bad rows scattered among many good ones, hostile look photos. Every bad row is reported
with its line number and skipped; every good row is imported; a refused photo leaves no file behind."""
import io

import pytest
from django.core.management import call_command

from catalog.models import Product, ProductImage
from robust_inputs import SVG, TEXT, encode, jpeg, media_files, photo, png_declaring

pytestmark = pytest.mark.django_db

HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"


def good(sku, name=None):
    return f"{sku},Women,Apparel,Topwear,Tops,Red,Summer,2012,Casual,{name or f'Good top {sku}'}"


def write_styles(tmp_path, lines, newline=b"\n", bom=False):
    folder = tmp_path / "styles"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    body = newline.join(line if isinstance(line, bytes) else line.encode() for line in [HEADER, *lines]) + newline
    (folder / "styles.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + body)
    return folder / "styles.csv", folder / "images"


def import_styles(path, images):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_catalogue", "--styles", str(path), "--images", str(images), stdout=out, stderr=err,
                 verbosity=0)
    return out.getvalue(), err.getvalue()


def test_an_unclosed_quote_does_not_swallow_the_rows_after_it(tmp_path):
    lines = [good("3001"),                                                              # line 2
             '3002,Women,Apparel,Topwear,Tops,Red,Summer,2012,Casual,"Unclosed quote top',  # line 3
             good("3003"), good("3004"), good("3005")]                                   # lines 4-6
    out, err = import_styles(*write_styles(tmp_path, lines))
    assert sorted(Product.objects.values_list("sku", flat=True)) == ["3001", "3003", "3004", "3005"], err
    assert "line 3" in err
    assert not Product.objects.filter(name__contains="\n").exists()


def test_nul_bytes_and_overlong_fields_are_reported_and_skipped(tmp_path):
    lines = [good("3101"),                                          # line 2
             good("3102", "Nul\x00byte top"),                       # line 3
             good("3103", "x" * 200_000),                           # line 4: larger than csv's field limit
             good("3104")]                                          # line 5
    out, err = import_styles(*write_styles(tmp_path, lines))
    assert {"3101", "3104"} <= set(Product.objects.values_list("sku", flat=True)), err
    for product in Product.objects.all():
        assert "\x00" not in product.name and len(product.name) <= 255
    assert not Product.objects.filter(sku__in=["3102", "3103"]).exists()
    assert "line 3: " in err and "line 4: " in err, err


def test_windows_line_endings_bom_and_blank_lines_are_fine(tmp_path):
    lines = [good("3201"), "", good("3202"), "   ", good("3203", '"Quoted, with comma"')]
    path, images = write_styles(tmp_path, lines, newline=b"\r\n", bom=True)
    for number, sku in enumerate(["3201", "3202", "3203"]):
        (images / f"{sku}.jpg").write_bytes(jpeg(seed=number))
    out, err = import_styles(path, images)
    assert sorted(Product.objects.values_list("sku", flat=True)) == ["3201", "3202", "3203"], err
    assert Product.objects.get(sku="3203").name == "Quoted, with comma"
    assert "3 images attached" in out and "0 errors" in out, err


def test_many_good_rows_with_bad_ones_scattered_among_them(tmp_path):
    bad = {
        5: "4005,Women,Apparel",                                                  # missing columns
        9: "4009,Martian,Apparel,Topwear,Tops,Red,Summer,2012,Casual,Odd top",    # unknown gender
        14: good("4002", "Same id as line 4"),                                    # duplicate id
        20: b"4020,Women,Apparel,Topwear,Tops,Red,Summer,2012,Casual,Caf\xe9",     # not UTF-8
        27: "4027,Women,Apparel,Topwear,Tops,Red,Summer,2012,Casual,",            # empty name
        33: ",Women,Apparel,Topwear,Tops,Red,Summer,2012,Casual,No id",           # empty id
        41: "4041,Women,Apparel,Topwear,Tops,Red,Summer,1066,Casual,Old top",     # year out of range
        48: good("4048") + ",extra",                                              # too many columns
    }
    lines, expected = [], []
    for line_number in range(2, 62):
        if line_number in bad:
            lines.append(bad[line_number])
        else:
            sku = f"40{line_number - 2:02d}"
            lines.append(good(sku))
            expected.append(sku)
    out, err = import_styles(*write_styles(tmp_path, lines))
    assert sorted(Product.objects.values_list("sku", flat=True)) == sorted(expected)
    for line_number in bad:
        assert f"line {line_number}:" in err, (line_number, err)
    assert f"{len(expected)} created" in out and f"{len(bad)} skipped" in out


def test_hostile_look_photos_are_reported_by_name_and_leave_nothing_behind(tmp_path, settings):
    photos = tmp_path / "looks"
    photos.mkdir()
    files = {
        "0001.jpg": jpeg((120, 240)),
        "0002.jpg": b"",
        "0003.jpg": TEXT,
        "0004.png": png_declaring(30000, 30000),
        "0005.png": encode(photo((8, 8)), "PNG"),
        "0006.webp": SVG,
        "0007.jpg": jpeg((120, 240), seed=5)[:400],
        "0008.png": encode(photo((64, 128)), "PNG"),
    }
    for name, data in files.items():
        (photos / name).write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    call_command("import_looks", "--photos", str(photos), stdout=out, stderr=err, verbosity=0)
    err = err.getvalue()
    imported = {image.product.sku for image in ProductImage.objects.select_related("product")}
    assert imported == {"look-0001", "look-0008"}, err
    for name in ("0002.jpg", "0003.jpg", "0004.png", "0005.png", "0006.webp", "0007.jpg"):
        assert name in err, (name, err)
    assert len(media_files(settings.MEDIA_ROOT)) == 2
    # Products without a usable photo are not left as empty looks either, or are reported as such.
    for product in Product.objects.exclude(sku__in=imported):
        assert product.images.count() == 0 and product.sku.removeprefix("look-") in err
