"""ml.colour: an article's colour from its own pixels, named in the catalogue's words (committed model)."""
import numpy as np
import pytest
from PIL import Image, ImageDraw

from ml.colour import WORDS, ColourReader, garment_pixels, lab_histogram, similarity, srgb_to_lab


@pytest.fixture(scope="module")
def reader():
    return ColourReader()


def garment(fill, background=(255, 255, 255), size=(224, 224)):
    image = Image.new("RGB", size, background)
    ImageDraw.Draw(image).rectangle([50, 40, size[0] - 50, size[1] - 34], fill=fill)
    return image


def test_cielab_of_reference_colours():
    lab = srgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0]], dtype=np.uint8))
    assert np.allclose(lab[0], [100, 0, 0], atol=0.5)
    assert np.allclose(lab[1], [0, 0, 0], atol=0.5)
    assert np.allclose(lab[2], [53.2, 80.1, 67.2], atol=0.5)  # sRGB red, D65


@pytest.mark.parametrize("fill, word", [
    ((200, 30, 40), "Red"), ((230, 20, 20), "Red"), ((20, 20, 22), "Black"), ((40, 80, 170), "Blue"),
    ((40, 130, 60), "Green"), ((240, 210, 50), "Yellow"), ((235, 140, 170), "Pink"), ((250, 140, 20), "Orange"),
])
@pytest.mark.parametrize("background", [(255, 255, 255), (128, 128, 128), (60, 90, 200)])
def test_a_plain_garment_is_named_by_its_colour_not_the_background(reader, fill, word, background):
    if np.abs(np.subtract(fill, background)).sum() < 60:
        pytest.skip("garment and background alike")
    colour = reader.read(garment(fill, background), [None])[0]
    assert colour.main == word, colour.names


def test_a_white_shirt_on_a_white_studio_background_is_white(reader):
    assert reader.read(garment((246, 246, 244)), [None])[0].main in ("White", "Off White")


def test_each_box_gets_the_colour_of_its_own_pixels(reader):
    image = Image.new("RGB", (200, 300), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle([40, 20, 160, 140], fill=(200, 30, 40))   # a red top
    draw.rectangle([50, 150, 150, 280], fill=(40, 80, 170))  # blue trousers
    top, bottom = reader.read(image, [(0.2, 0.06, 0.8, 0.47), (0.25, 0.5, 0.75, 0.94)])
    assert (top.main, bottom.main) == ("Red", "Blue")
    assert similarity(top.descriptor, bottom.descriptor) < 0.3


def test_skin_inside_a_person_box_is_not_the_garments_colour():
    # a person mask covering the box; 60 % of the person's pixels are skin, 40 % a green top
    rgb = np.full((100, 100, 3), 255, np.uint8)
    rgb[:, :60] = (224, 172, 140)   # skin tone
    rgb[:, 60:] = (40, 130, 60)
    mask = np.ones((100, 100), np.float32)
    pixels, weights = garment_pixels(rgb, None, mask, srgb_to_lab(np.array([255, 255, 255])))
    assert len(pixels) and np.all(pixels == (40, 130, 60))
    # a skin-coloured garment (nothing else left) keeps its pixels
    rgb[:, 60:] = (224, 172, 140)
    pixels, _ = garment_pixels(rgb, None, mask, srgb_to_lab(np.array([255, 255, 255])))
    assert len(pixels) == 100 * 100


def test_descriptors_are_unit_length_and_compare_colours(reader):
    red, dark_red, blue = (reader.read(garment(fill), [None])[0] for fill in
                           [(200, 30, 40), (185, 35, 45), (40, 80, 170)])
    for colour in (red, dark_red, blue):
        assert colour.descriptor.shape == (len(WORDS),)
        assert abs(float(np.linalg.norm(colour.descriptor)) - 1) < 1e-5
        assert abs(float(colour.probabilities.sum()) - 1) < 1e-4
    assert similarity(red.descriptor, dark_red.descriptor) > 0.9 > 0.2 > similarity(red.descriptor, blue.descriptor)


def test_histogram_changes_smoothly_with_the_colour():
    ones = np.ones(500, np.float32)
    a = lab_histogram(np.full((500, 3), (120, 60, 60), np.uint8), ones)
    b = lab_histogram(np.full((500, 3), (123, 60, 60), np.uint8), ones)
    assert abs(float(np.linalg.norm(a)) - 1) < 1e-5 and float(a @ b) > 0.98


def test_a_box_without_pixels_has_no_colour(reader):
    colour = reader.describe_pixels(np.zeros((0, 3), np.uint8), np.zeros(0, np.float32))
    assert colour.names == () and colour.main == "" and not colour.descriptor.any()


def test_a_model_file_for_other_words_is_refused(tmp_path):
    np.savez(tmp_path / "bad.npz", words=np.array(["Red", "Blue"]), w1=np.zeros((3, 2)), b1=np.zeros(2),
             w2=np.zeros((2, 2)), b2=np.zeros(2), digest=np.array("x"))
    with pytest.raises(ValueError, match="other colour words"):
        ColourReader(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="colour model missing"):
        ColourReader(tmp_path / "missing.npz")


def test_a_shops_own_colour_word_leads_and_the_photo_still_counts(reader):
    from ml.colour import SHOP_COLOUR_TRUST, with_known_colour

    read = reader.read(garment((40, 80, 170)), [None])[0]  # read as blue
    known = with_known_colour(read, "navy blue")  # the shop says navy blue (any case)
    assert known.main == "Navy Blue"
    navy, blue = WORDS.index("Navy Blue"), WORDS.index("Blue")
    assert known.probabilities[navy] >= SHOP_COLOUR_TRUST
    assert known.probabilities[blue] == pytest.approx((1 - SHOP_COLOUR_TRUST) * read.probabilities[blue], abs=1e-4)
    assert abs(float(known.probabilities.sum()) - 1) < 1e-4
    assert abs(float(np.linalg.norm(known.descriptor)) - 1) < 1e-5
    # words the reader does not know (or none) leave the colour read from the photo as it is
    assert with_known_colour(read, "multi") is read and with_known_colour(read, "") is read
    # nothing read: the shop's word alone
    assert with_known_colour(None, "Red").main == "Red"
