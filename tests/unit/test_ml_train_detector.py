"""Detector training data: garment close-ups, pseudo labels, oversampling (no TensorFlow needed)."""
import json

import numpy as np
import pytest
from PIL import Image

from ml.detection_data import CATEGORIES
from ml.pseudo_labels import tag_categories
from ml.train_detector import (
    MAX_BOXES, _canvas_boxes, closeup_region, extra_samples, load_pseudo_labels, sample_weights,
)

STORE = (140, 90)  # (height, width) of the letterboxed samples


def test_closeup_region_contains_the_box_and_stays_in_the_photo():
    rng = np.random.default_rng(0)
    box = (0.4, 0.8, 0.55, 0.95)  # a shoe near the bottom edge
    for _ in range(50):
        x1, y1, x2, y2 = closeup_region(box, 400, 600, rng)
        assert 0 <= x1 <= 0.4 * 400 and x2 >= 0.55 * 400 and x2 <= 400
        assert 0 <= y1 <= 0.8 * 600 and y2 >= 0.95 * 600 - 1e-6 and y2 <= 600
        # the margin is at most 60 % of the box per side
        assert x2 - x1 <= 0.15 * 400 * 2.2 + 1e-6


def test_canvas_boxes_clip_and_drop_mostly_outside_boxes():
    boxes = [(100, 100, 200, 200), (150, 150, 400, 400), (0, 0, 40, 40)]
    region = (90, 90, 250, 250)  # the first box inside, the second 16 % inside, the third outside
    out, classes = _canvas_boxes(boxes, [0, 1, 2], region, scale=1.0, pad_x=0, pad_y=0, store_size=(160, 160))
    assert classes == [0]
    assert np.allclose(out[0], [10 / 160, 10 / 160, 110 / 160, 110 / 160])


def test_extra_samples_crop_one_garment_and_keep_whole_photos(tmp_path):
    photo = np.full((300, 200, 3), 200, np.uint8)
    photo[30:120, 50:150] = (255, 0, 0)  # a top
    photo[260:290, 40:80] = (0, 0, 255)  # a shoe
    path = tmp_path / "look.jpg"
    Image.fromarray(photo).save(path)
    boxes = [(0.25, 0.1, 0.75, 0.4), (0.2, 260 / 300, 0.4, 290 / 300)]
    images, gt_boxes, gt_classes = extra_samples(
        [(path, boxes, [0, 3], False), (path, boxes, [0, 3], True)], STORE, crops_per_photo=3, seed=1)
    assert len(images) == 3 + 1 + 3
    assert images.shape[1:] == (*STORE, 3) and images.dtype == np.uint8
    assert gt_boxes.shape == (7, MAX_BOXES, 4) and gt_classes.shape == (7, MAX_BOXES)
    whole = gt_classes[3]
    assert sorted(whole[whole >= 0].tolist()) == [0, 3]
    for i in (0, 1, 2, 4, 5, 6):  # close-ups: one garment fills much of the canvas
        valid = gt_classes[i] >= 0
        assert valid.sum() >= 1
        b = gt_boxes[i][valid]
        assert (b >= -1e-6).all() and (b <= 1 + 1e-6).all()
        area = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).max()
        assert area > 0.08


def test_pseudo_labels_keep_one_box_per_garment_but_two_shoes(tmp_path):
    (tmp_path / "photos").mkdir()
    data = {"photos": {"1005": {"width": 10, "height": 20,
                                "boxes": [[0, 0, .5, .5], [0, 0, .4, .4], [0, .8, .2, 1], [.3, .8, .5, 1],
                                          [.6, .8, .8, 1]],
                                "classes": [0, 0, 3, 3, 3]}}, "summary": {}}
    path = tmp_path / "pseudo.json"
    path.write_text(json.dumps(data))
    [(photo, boxes, classes, whole)] = load_pseudo_labels(path, tmp_path)
    assert photo == tmp_path / "photos" / "1005.jpg" and whole
    assert classes == [0, 3, 3] and boxes[0] == (0, 0, .5, .5)


def test_sample_weights_oversample_rare_classes():
    classes = np.array([[0, 3, -1], [2, -1, -1], [4, 2, -1], [1, -1, -1]], np.float32)
    weights = sample_weights(classes, {CATEGORIES.index("dress"): 3, CATEGORIES.index("bag"): 2})
    assert weights.tolist() == [1, 3, 3, 1]


def test_tags_map_to_look_categories():
    assert tag_categories(["blouse", "skirt", "heels", "hair", "bracelet"]) == {0, 1, 3}
    assert tag_categories(["purse", "romper"]) == {2, 4}
    assert tag_categories(["hair", "skin"]) == set()


@pytest.mark.parametrize("bad", ["dress", "coat=2", "bag=x"])
def test_oversample_option_is_validated(bad, tmp_path, capsys):
    from ml.train_detector import main

    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--oversample", bad])
    assert "--oversample" in capsys.readouterr().err
