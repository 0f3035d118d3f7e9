"""ml.face_gender (the face chip cut with the pose landmarks, the committed ONNX model) and its fusion
in ml.gender.GenderClassifier, on the real fixture photos."""
from pathlib import Path

import numpy as np
import pytest

from ml.face_gender import DEFAULT_FACE_WEIGHTS, FaceGender, face_chip, fuse
from ml.gender import GenderClassifier
from ml.images import load_image

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def gate():
    from ml.pose import PoseGate

    return PoseGate()


@pytest.fixture(scope="module")
def classifier():
    return GenderClassifier()


@pytest.fixture(scope="module")
def face():
    return FaceGender().load()


def _shot(gate, name):
    image = load_image(FIXTURES / name)
    pose = gate.check(image)
    assert pose.is_full_shot
    return image, pose.keypoints


def test_weights_and_fusion_record_are_committed(classifier):
    assert DEFAULT_FACE_WEIGHTS.is_file() and DEFAULT_FACE_WEIGHTS.stat().st_size < 1_000_000
    assert classifier.face is not None
    assert classifier.version.endswith("+face-1")
    assert GenderClassifier(face=False).version == "gender-mnv2-v2"


@pytest.mark.parametrize("name, expected", [
    ("street_full_body.jpg", "Men"),            # a man in a long grey coat and a cap
    ("street_full_body_woman.jpg", "Women"),
])
def test_face_chip_found_and_fused_prediction(classifier, face, gate, name, expected):
    image, keypoints = _shot(gate, name)
    found = face_chip(image, keypoints)
    assert found is not None
    chip, eye_distance = found
    assert chip.shape == (32, 32, 3) and chip.dtype == np.uint8
    assert eye_distance > 20  # outer eye corners, pixels: a face large enough to classify
    p_women, _ = face.p_women(image, keypoints)
    assert (p_women > 0.5) == (expected == "Women")
    label, confidence = classifier.predict(image, keypoints=keypoints)
    assert label == expected and 0.5 < confidence <= 1.0


def test_no_face_keypoints_falls_back_to_the_body_model(classifier, face, gate):
    image, keypoints = _shot(gate, "street_full_body_woman.jpg")
    hidden = [(x, y, 0.0) if i <= 10 else (x, y, v) for i, (x, y, v) in enumerate(keypoints)]
    assert face.p_women(image, hidden) is None
    p_body = classifier.body_p_women(image, keypoints=hidden)
    label, confidence = classifier.predict(image, keypoints=hidden)
    assert label == ("Women" if p_body > 0.5 else "Men")
    assert confidence == pytest.approx(max(p_body, 1 - p_body), abs=1e-5)
    # without keypoints at all (not a full shot) the face is not looked for either
    assert classifier.predict(image)[0] in ("Men", "Women")


def test_fuse_is_a_logit_sum_and_leaves_faceless_photos_alone():
    p = fuse([0.5, 0.8], [0.9, np.nan], weight=1.0, bias=0.0)
    assert p[0] == pytest.approx(0.9, abs=1e-6)
    assert p[1] == pytest.approx(0.8, abs=1e-6)


def test_demo_man_in_a_long_coat_is_men_thanks_to_his_face(classifier, gate):
    """demo_data/looks/0983.jpg: the clothes alone say Women (0.77), his face says Men."""
    image = load_image(Path(__file__).resolve().parents[2] / "demo_data" / "looks" / "0983.jpg")
    pose = gate.check(image)
    assert pose.is_full_shot
    assert classifier.body_p_women(image, keypoints=pose.keypoints) > 0.5
    assert classifier.predict(image, keypoints=pose.keypoints)[0] == "Men"


def test_a_body_model_with_its_own_fusion_record_uses_it(tmp_path):
    import json

    weights = tmp_path / "gender-test.weights.h5"
    record = {"version": "gender-test", "hidden": 256,
              "face_fusion": {"weight": 1.5, "bias": 0.25, "min_visibility": 0.8, "min_eye_distance": 16.0,
                              "max_yaw": 0.3}}
    (tmp_path / "gender-test.weights.h5.json").write_text(json.dumps(record))
    own = GenderClassifier(weights)
    assert own.face_fusion["weight"] == 1.5 and own.face_fusion["bias"] == 0.25
    assert own.face.min_eye_distance == 16.0 and own.version == "gender-test+face-1"
    record["face_fusion"]["weight"] = 0.0  # a fusion calibrated to ignore the face: body only
    (tmp_path / "gender-test.weights.h5.json").write_text(json.dumps(record))
    assert GenderClassifier(weights).face is None
    del record["face_fusion"]  # no record of its own: the face model's committed one
    (tmp_path / "gender-test.weights.h5.json").write_text(json.dumps(record))
    assert GenderClassifier(weights).face_fusion == json.loads(Path(str(DEFAULT_FACE_WEIGHTS) + ".json").read_text())


def test_street_folds_are_fixed_and_split_the_photos():
    from ml.train_gender import street_fold

    names = [f"{i:04d}.jpg" for i in range(400)]
    folds = [street_fold(n) for n in names]
    assert folds == [street_fold(Path("/elsewhere") / n) for n in names]  # by file name only
    assert 150 < sum(folds) < 250


def test_a_two_head_model_loads_as_written_and_averages_the_heads_logits(tmp_path):
    import json

    import keras

    from ml.gender import FEATURE_DIM, build_gender_model, build_head, pair_head

    keras.utils.set_random_seed(3)
    first, second = build_head(32, name="gender_head"), build_head(32, name="street_head")
    pair = pair_head(first, second)
    features = np.random.default_rng(0).standard_normal((4, FEATURE_DIM)).astype(np.float32)
    p1, p2, both = (np.asarray(m(features, training=False)) for m in (first, second, pair))
    logit = lambda p: np.log(p[:, 1]) - np.log(p[:, 0])  # noqa: E731
    np.testing.assert_allclose(logit(both), (logit(p1) + logit(p2)) / 2, atol=1e-4)

    weights = tmp_path / "pair.weights.h5"
    written = build_gender_model(backbone_weights=None, head=pair)
    written.save_weights(weights)
    (tmp_path / "pair.weights.h5.json").write_text(json.dumps({"version": "pair-test", "hidden": 32, "heads": 2}))
    photo = load_image(FIXTURES / "street_full_body.jpg")
    from ml.gender import prepare

    batch = np.stack([prepare(photo), prepare(photo)[:, ::-1]])
    expected = np.asarray(written(batch, training=False)).mean(axis=0)
    loaded = GenderClassifier(weights, face=False).probabilities([photo])[0]
    np.testing.assert_allclose(loaded, expected, atol=1e-4)
