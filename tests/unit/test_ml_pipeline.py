"""ml.pipeline.analyse end to end with the project's real parts and committed weights."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ml
from ml.images import ImageError
from ml.pipeline import Analysis, Article, Parts, crop_with_margin, load_part

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
STREET = FIXTURES / "street_full_body.jpg"
SHOE = FIXTURES / "catalogue_shoe.jpg"




@pytest.fixture(scope="module")
def parts():
    from ml.pipeline import default_parts

    return default_parts()


@pytest.fixture(scope="module")
def street_analysis(parts):
    return ml.analyse(STREET.read_bytes(), parts=parts)


def test_lazy_exports():
    assert ml.Analysis is Analysis and ml.Article is Article
    assert ml.analyse.__module__ == "ml.pipeline"


def test_load_part_imports_by_dotted_path():
    from ml.pose import PoseGate

    assert load_part("ml.pose.PoseGate") is PoseGate
    assert load_part("ml.pose:PoseGate") is PoseGate
    with pytest.raises(ImportError, match="has no attribute"):
        load_part("ml.pose.NoSuchGate")
    with pytest.raises(ImportError, match="cannot import"):
        load_part("ml.no_such_module.Thing")
    with pytest.raises(ImportError):
        load_part("PoseGate")


def test_crop_with_margin_widens_and_clips():
    img = Image.new("RGB", (200, 100))
    crop = crop_with_margin(img, (0.25, 0.2, 0.75, 0.6), margin=0.1)
    assert crop.size == (120, 48)  # 100×40 box + 10 % of it on each side
    assert crop_with_margin(img, (0.0, 0.0, 1.0, 1.0)).size == (200, 100)  # clipped at the edges


def test_default_parts_are_built_once_without_loading_tensorflow():
    code = (
        "import sys, threading\n"
        "from ml.pipeline import default_parts\n"
        "seen = []\n"
        "ts = [threading.Thread(target=lambda: seen.append(default_parts())) for _ in range(8)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "assert all(p is seen[0] for p in seen) and len(seen) == 8\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_full_body_street_photo(street_analysis, parts):
    a = street_analysis
    assert (a.width, a.height) == (550, 810)
    assert a.is_full_shot and a.pose_score >= 0.5 and len(a.keypoints) == 33
    categories = {article.category for article in a.articles}
    assert categories & {"top", "dress"}, categories
    assert "footwear" in categories, categories
    dim = parts.embedder.dim
    for article in a.articles:
        x1, y1, x2, y2 = article.box
        assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
        assert 0.25 <= article.confidence <= 1
        assert article.embedding.dtype == np.float32 and article.embedding.shape == (dim,)
        assert abs(float(np.linalg.norm(article.embedding)) - 1) < 1e-3
    assert a.image_embedding.dtype == np.float32 and a.image_embedding.shape == (dim,)
    # the crops are different pictures: their vectors differ from the whole image's
    assert all(float(article.embedding @ a.image_embedding) < 0.9999 for article in a.articles)
    assert a.gender in ("Men", "Women") and a.gender_source == "predicted"
    assert 0.5 <= a.gender_confidence <= 1
    assert set(a.timings) == {"decode", "pose", "gender", "detect", "embed", "check", "colour", "total"}
    assert a.timings["total"] >= a.timings["detect"] > 0
    assert set(a.model_versions) == {"pose", "gender", "detector", "embedder", "colour", "category_head", "kind_head"}
    # every article and the whole photo carry a kind descriptor (ml.kind_head): unit length, one value per type
    kinds = [a.image_kind] + [article.kind for article in a.articles]
    assert all(k.shape == (parts.kind_head.dim,) and abs(float(np.linalg.norm(k)) - 1) < 1e-4 for k in kinds)
    assert a.model_versions["embedder"] == parts.embedder.version
    # every article and the whole photo carry their colours, read from their own pixels
    from ml.colour import WORDS

    for colour in [a.image_colour] + [article.colour for article in a.articles]:
        assert colour.main in WORDS and colour.descriptor.shape == (len(WORDS),)
        assert abs(float(np.linalg.norm(colour.descriptor)) - 1) < 1e-4
    # the photo's shoes are dark red and its trousers white: different colours in different boxes
    by_category = {article.category: article.colour for article in a.articles}
    assert by_category["footwear"].main != by_category["bottom"].main


def test_the_category_head_drops_a_dress_box_that_shows_a_top(parts):
    """ml.detect.HEAD_CHECKS: a "dress" box whose own vector the real category head calls a top is dropped; a real
    dress, and boxes of unchecked categories, are kept; without a head nothing is dropped."""
    import dataclasses

    from ml.detect import HEAD_CHECKS
    from ml.pipeline import check_articles

    assert HEAD_CHECKS.get("dress", 0) > 0
    dress, shirt = parts.embedder.embed([Image.open(FIXTURES / "catalogue_women_dress.jpg"),
                                         Image.open(FIXTURES / "catalogue_men_tshirt.jpg")])
    found = [Article("dress", 0.6, (0.2, 0.2, 0.8, 0.9), dress), Article("dress", 0.5, (0.2, 0.1, 0.8, 0.5), shirt),
             Article("top", 0.7, (0.2, 0.1, 0.8, 0.5), shirt)]
    versions = {}
    kept = check_articles(parts, found, versions)
    assert [(a.category, a.confidence) for a in kept] == [("dress", 0.6), ("top", 0.7)]
    assert versions["category_head"] == parts.category_head.version
    assert check_articles(dataclasses.replace(parts, category_head=None), found, {}) == found


def test_the_kind_head_tells_a_dress_from_a_shirt_and_a_shoe(parts):
    """ml.kind_head: the committed head reads the catalogue fixtures' own article types from their vectors, and two
    photos of one kind are more alike than photos of two kinds."""
    head = parts.kind_head
    assert head.available_for(parts.embedder.version) and head.dim == len(head.types)
    names = ("catalogue_women_dress.jpg", "catalogue_men_tshirt.jpg", "catalogue_shoe.jpg")
    vectors = parts.embedder.embed([Image.open(FIXTURES / name) for name in names])
    kinds = head.descriptors(vectors)
    assert [head.types[int(np.argmax(k))] for k in kinds[:2]] == ["Dresses", "Tshirts"]
    assert head.types[int(np.argmax(kinds[2]))] in {"Casual Shoes", "Sports Shoes", "Formal Shoes", "Heels", "Flats"}
    assert np.allclose(np.linalg.norm(kinds, axis=1), 1, atol=1e-4)
    assert float(kinds[0] @ kinds[1]) < 0.5 and float(kinds[0] @ kinds[0]) > 0.99


def test_product_gender_wins_over_the_prediction(parts):
    a = ml.analyse(STREET, gender="Women", parts=parts, detect=False)
    assert (a.gender, a.gender_confidence, a.gender_source) == ("Women", 1.0, "product")
    assert "gender" not in a.model_versions
    assert a.articles == [] and "detector" not in a.model_versions  # detect=False skips it


def test_shoe_close_up_is_not_a_full_shot_and_gets_no_articles(parts):
    a = ml.analyse(Image.open(SHOE), gender="Men", parts=parts)
    assert not a.is_full_shot
    assert a.articles == [] and "detector" not in a.model_versions
    assert a.image_embedding.shape == (parts.embedder.dim,)  # still findable through its own vector
    assert a.image_colour.main == "Brown"  # a brown leather shoe on white: the studio background is not its colour
    forced = ml.analyse(SHOE, gender="Men", parts=parts, detect=True)
    assert "detector" in forced.model_versions


def test_exif_rotated_upload_is_analysed_upright(parts, street_analysis):
    import io

    stored = Image.open(STREET).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", exif=exif.tobytes(), quality=92)
    a = ml.analyse(buf.getvalue(), gender="Women", parts=parts)
    assert (a.width, a.height) == (550, 810) and a.is_full_shot
    assert float(a.image_embedding @ street_analysis.image_embedding) > 0.95


def _encode(img, fmt="PNG", **kw):
    import io

    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_declaring(width, height):
    """A 64×64 PNG whose header is rewritten to declare width × height (a decompression bomb)."""
    import struct
    import zlib

    data = bytearray(_encode(Image.new("L", (64, 64))))
    ihdr = data[12:29]
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


@pytest.mark.parametrize("variant", ["cmyk_jpeg", "rgba_png", "grey_16bit_png"])
def test_unusual_encodings_give_a_correct_analysis(parts, street_analysis, variant):
    source = Image.open(STREET)
    if variant == "cmyk_jpeg":
        payload = _encode(source.convert("CMYK"), "JPEG", quality=92)
    elif variant == "rgba_png":
        rgba = source.convert("RGBA")
        rgba.putalpha(255)
        rgba.paste((0, 0, 0, 0), (0, 0, 20, 20))  # a transparent corner
        payload = _encode(rgba)
    else:
        grey = np.asarray(source.convert("L"), dtype=np.uint16) * 257
        payload = _encode(Image.fromarray(grey))
        assert Image.open(__import__("io").BytesIO(payload)).mode.startswith("I;16")
    a = ml.analyse(payload, gender="Men", parts=parts)
    assert (a.width, a.height) == (550, 810)
    assert a.is_full_shot
    assert {"footwear"} <= {article.category for article in a.articles}
    if variant == "grey_16bit_png":
        # Correct 16-bit scaling gives the same picture as the 8-bit grey photo (a colour-aware embedder
        # rightly moves grey away from the colour original, so compare with the grey one).
        reference = parts.embedder.embed([source.convert("L").convert("RGB")])[0]
    else:
        reference = street_analysis.image_embedding
    similarity = float(a.image_embedding @ reference)
    assert similarity > 0.9, similarity


@pytest.mark.parametrize("payload, message", [
    (b"", "image is empty"),
    (b"plain text, not a photo", "not an image"),
    (STREET.read_bytes()[:20000], "truncated JPEG"),
    (_encode(Image.new("RGB", (1, 1))), "image too small: 1×1"),
    (_png_declaring(30000, 30000), "image too large: 30000×30000 pixels exceeds the 40 megapixel limit"),
])
def test_bad_input_is_an_image_error_before_any_model(payload, message):
    class Untouchable:
        version = "never"

        def __getattr__(self, name):
            raise AssertionError("a model was called for a bad input")

    parts = Parts(pose=Untouchable(), gender=Untouchable(), detector=Untouchable(), embedder=Untouchable())
    with pytest.raises(ImageError, match=message):
        ml.analyse(payload, parts=parts)
