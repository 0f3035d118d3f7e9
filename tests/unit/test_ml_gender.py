"""ml.gender.GenderClassifier with the committed weights, on catalogue and street photos."""
from pathlib import Path

import pytest
from PIL import Image

from ml.gender import LABELS, GenderClassifier, upper_body_crop
from ml.images import load_image

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def classifier():
    return GenderClassifier()


@pytest.fixture(scope="module")
def gate():
    from ml.pose import PoseGate

    return PoseGate()


@pytest.mark.parametrize("name, expected", [
    ("catalogue_women_dress.jpg", "Women"),   # hold-out product 10500, never trained on
    ("catalogue_men_tshirt.jpg", "Men"),      # hold-out product 10005
])
def test_catalogue_photos(classifier, name, expected):
    label, confidence = classifier.predict(load_image(FIXTURES / name))
    assert label == expected
    assert 0.9 <= confidence <= 1.0


@pytest.mark.parametrize("name, expected", [
    ("street_full_body.jpg", "Men"),
    ("street_full_body_woman.jpg", "Women"),
])
def test_street_full_shots_through_the_person_crop(classifier, gate, name, expected):
    image = load_image(FIXTURES / name)
    pose = gate.check(image)
    assert pose.is_full_shot
    label, confidence = classifier.predict(image, keypoints=pose.keypoints)
    assert label == expected and confidence > 0.5


def test_upper_body_crop_is_head_to_hips(gate):
    image = load_image(FIXTURES / "street_full_body.jpg")
    keypoints = gate.check(image).keypoints
    crop = upper_body_crop(image, keypoints)
    assert crop is not None
    # about the upper half of a full-body photo, narrower than the photo
    assert 0.3 * image.height < crop.height < 0.7 * image.height
    assert crop.width < image.width
    assert upper_body_crop(image, []) is None
    assert upper_body_crop(image, [(0.5, 0.5, 0.0)] * 33) is None  # nothing visible


def test_batch_probabilities_and_version(classifier):
    images = [load_image(FIXTURES / "catalogue_women_dress.jpg"), Image.new("RGB", (300, 500), "white")]
    probs = classifier.probabilities(images)
    assert probs.shape == (2, len(LABELS))
    assert abs(float(probs.sum(1).max()) - 1) < 1e-4 and abs(float(probs.sum(1).min()) - 1) < 1e-4
    assert classifier.version.startswith("gender-")
