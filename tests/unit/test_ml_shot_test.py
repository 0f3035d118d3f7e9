"""The shot test before the pose gate (ml.shot_test) inside catalogue ingest (ml.pipeline.analyse_batch)."""
import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

from ml.images import load_image
from ml.pipeline import analyse_batch
from ml.shot_test import CLASSES, ShotTest

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
PHOTOS = {
    "shoe": (FIXTURES / "catalogue_shoe.jpg", "Men"),
    "tshirt": (FIXTURES / "catalogue_men_tshirt.jpg", "Men"),
    "dress": (FIXTURES / "catalogue_women_dress.jpg", "Women"),
    "street": (FIXTURES / "street_full_body.jpg", "Women"),
    "street_woman": (FIXTURES / "street_full_body_woman.jpg", "Women"),
}


def pixels_digest(image):
    return hashlib.sha1(image.tobytes()).hexdigest()


def asked_about(gate, name):
    return pixels_digest(load_image(PHOTOS[name][0])) in gate.asked


class WatchedGate:
    """The real pose gate, recording (a digest of the pixels of) every photo it is asked about."""

    def __init__(self, gate):
        self.gate, self.version, self.asked = gate, gate.version, []

    def check(self, image):
        self.asked.append(pixels_digest(image))
        return self.gate.check(image)


@pytest.fixture(scope="module")
def parts():
    from ml.pipeline import default_parts

    return default_parts()


def _batch(parts, shot_test):
    gate = WatchedGate(parts.pose)
    chosen = dataclasses.replace(parts, pose=gate, shot_test=shot_test)
    paths, genders = zip(*PHOTOS.values())
    results = analyse_batch(list(paths), genders=list(genders), parts=chosen)
    return dict(zip(PHOTOS, results)), gate


@pytest.fixture(scope="module")
def screened(parts):
    return _batch(parts, parts.shot_test)


@pytest.fixture(scope="module")
def unscreened(parts):
    return _batch(parts, None)


def test_the_committed_test_fits_the_committed_embedder(parts):
    test = parts.shot_test
    assert isinstance(test, ShotTest) and test.available_for(parts.embedder.version)
    assert test.version.startswith("shot-test-") and parts.embedder.version in test.version
    assert "shot_test" not in parts.versions()  # a new test does not make stored analyses stale


def test_a_packshot_skips_the_gate_and_full_shots_still_pass_it(screened):
    results, gate = screened
    assert all(not isinstance(r, Exception) for r in results.values()), results
    shoe = results["shoe"]
    assert not shoe.is_full_shot and shoe.articles == []
    assert shoe.model_versions["shot_test"].startswith("shot-test-")
    assert shoe.timings["shot_test"] >= 0 and "pose" not in shoe.timings  # no pose timing: the gate did not run
    # the gate saw both street photos (and decided them), never the shoe on white
    assert not asked_about(gate, "shoe")
    for name in ("street", "street_woman"):
        street = results[name]
        assert asked_about(gate, name)
        assert street.is_full_shot and {a.category for a in street.articles} >= {"top", "footwear"}
    assert len(gate.asked) < len(PHOTOS)


def test_screened_ingest_stores_what_the_gate_for_every_photo_stores(screened, unscreened):
    with_test, without = screened[0], unscreened[0]
    assert len(unscreened[1].asked) == len(PHOTOS)  # no test: every photo runs the gate
    for name in PHOTOS:
        a, b = with_test[name], without[name]
        assert a.is_full_shot == b.is_full_shot, name
        assert np.allclose(a.image_embedding, b.image_embedding, atol=1e-5), name
        assert [x.category for x in a.articles] == [x.category for x in b.articles], name
        assert a.image_colour.main == b.image_colour.main, name
        assert "shot_test" not in b.model_versions


def test_a_test_made_for_another_embedder_is_not_used(parts, tmp_path):
    other = tmp_path / "shot-test.npz"
    np.savez(other, weights=np.zeros((parts.embedder.dim, 3), np.float32), bias=np.array([9.0, 0.0, -9.0], np.float32),
             classes=np.array(CLASSES), embedder_version="embed-some-other-model", version="shot-test-1-other",
             threshold=0.5, person_threshold=0.5)
    test = ShotTest(other)
    assert not test.available_for(parts.embedder.version)
    assert [s.run_gate for s in test.screen(np.zeros((2, parts.embedder.dim)))] == [False, False]  # it would skip
    results, gate = _batch(parts, test)
    assert len(gate.asked) == len(PHOTOS)  # ... but it is not used: every photo runs the gate
    assert all("shot_test" not in r.model_versions for r in results.values())
    assert ShotTest(tmp_path / "missing.npz").available_for(parts.embedder.version) is False
