"""ml.pose.PoseGate on real photos: a full-body street photo is a full shot, a shoe close-up is not."""
from pathlib import Path

import pytest
from PIL import Image

from ml.images import load_image

pose = pytest.importorskip("ml.pose")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STREET = FIXTURES / "street_full_body.jpg"
SHOE = FIXTURES / "catalogue_shoe.jpg"


@pytest.fixture(scope="module")
def gate():
    return pose.PoseGate()


def test_full_body_street_photo_is_a_full_shot(gate):
    result = gate.check(load_image(STREET))
    assert result.is_full_shot
    assert 0.5 <= result.score <= 1.0
    assert len(result.keypoints) == 33
    nose, shoulder, hip, ankle = (result.keypoints[i] for i in (0, 11, 23, 27))
    # upright person: head above shoulders above hips above ankles, all inside the frame
    assert nose[1] < shoulder[1] < hip[1] < ankle[1]
    assert all(0.0 <= v <= 1.0 for x, y, v in result.keypoints)
    assert all(0.0 <= c <= 1.0 for p in (nose, hip, ankle) for c in p[:2])
    assert ankle[1] > 0.7 and nose[1] < 0.3


def test_shoe_close_up_is_not_a_full_shot(gate):
    result = gate.check(load_image(SHOE))
    assert not result.is_full_shot
    assert result.score < 0.5


def test_upper_half_of_a_street_photo_is_not_a_full_shot(gate):
    img = load_image(STREET)
    top = img.crop((0, 0, img.width, int(img.height * 0.55)))  # head to hips, no legs
    assert not gate.check(top).is_full_shot


def test_exif_rotated_photo_is_still_a_full_shot(gate):
    import io

    stored = Image.open(STREET).transpose(Image.Transpose.ROTATE_90)  # stored sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed upright after a 90° clockwise turn
    buf = io.BytesIO()
    stored.save(buf, "JPEG", exif=exif.tobytes(), quality=92)
    result = gate.check(load_image(buf.getvalue()))
    assert result.is_full_shot


def test_thresholds_are_configurable():
    strict = pose.PoseGate(ankle_visibility=1.01)
    result = strict.check(load_image(STREET))
    assert not result.is_full_shot and len(result.keypoints) == 33


def test_version_names_the_models(gate):
    assert "mediapipe" in gate.version


def test_the_quick_test_skips_the_landmarks_of_a_half_body_and_never_of_a_full_shot(gate):
    """A model cut at the hips cannot be a full shot: the person detector's body circle says so, the landmark
    model does not run (no keypoints), and the verdict is the one the full gate gives."""
    img = load_image(STREET)
    half = img.crop((0, 0, img.width, int(img.height * 0.55)))
    quick = gate.check(half)
    assert quick.person_seen and quick.keypoints == [] and not quick.is_full_shot
    slow = pose.PoseGate(quick_reject=False).check(half)
    assert slow.person_seen and len(slow.keypoints) == 33 and not slow.is_full_shot
    full = gate.check(img)
    assert full.person_seen and full.is_full_shot and len(full.keypoints) == 33
    # Tighter bounds make the quick test rule the full shot out too: the thresholds are what decides.
    assert not pose.PoseGate(max_feet_height=0.5).check(img).is_full_shot
