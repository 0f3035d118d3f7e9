"""Article detector: boxes from masks, split, AP code, letterbox geometry, and the committed model."""
import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml import detection_data
from ml.detect import CATEGORIES, DEFAULT_WEIGHTS, ArticleDetector, Detection, letterbox, to_photo_boxes
from ml.evaluation.detection import average_precision, detection_metrics, iou_matrix

ROOT = Path(__file__).resolve().parents[2]
LOOKS = ROOT / "demo_data" / "looks"
# Demo looks that are in the detector's validation split of the full street set (never trained on:
# `ml.detection_data.split` of ../shared/data/street puts them there).
VALIDATION_LOOKS = ["0058", "0121", "0224"]


# ---------------------------------------------------------------------------------------------
# Boxes from masks
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def labels_file(tmp_path_factory):
    taxonomy = json.loads((ROOT / "ml" / "categories.json").read_text())["look"]
    labels = ["null", "skin", "hair"] + sorted({lab for c in taxonomy.values() for lab in c["ccp"]})
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_text("\n".join(labels) + "\n")
    return path, labels


def test_label_table_maps_taxonomy(labels_file):
    path, labels = labels_file
    table = detection_data.label_to_category(path)
    assert table[labels.index("jeans")] == CATEGORIES.index("bottom")
    assert table[labels.index("suit")] == CATEGORIES.index("dress")
    assert table[labels.index("sneakers")] == CATEGORIES.index("footwear")
    assert table[labels.index("purse")] == CATEGORIES.index("bag")
    assert table[labels.index("skin")] == 255 and table[labels.index("null")] == 255


def test_label_table_rejects_missing_label(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("null\nskin\n")
    with pytest.raises(ValueError, match="missing"):
        detection_data.label_to_category(path)


def test_boxes_from_mask_joins_legs_splits_shoes_drops_specks(labels_file):
    path, labels = labels_file
    table = detection_data.label_to_category(path)
    mask = np.zeros((600, 400), dtype=np.uint8)
    mask[100:250, 100:300] = labels.index("shirt")
    mask[260:500, 120:190] = labels.index("pants")  # left leg
    mask[260:500, 210:280] = labels.index("pants")  # right leg, 20 px gap
    mask[510:540, 100:170] = labels.index("shoes")  # left shoe
    mask[510:540, 240:310] = labels.index("shoes")  # right shoe, 70 px apart
    mask[20:22, 20:22] = labels.index("bag")  # a speck
    boxes, classes = detection_data.boxes_from_mask(mask, table)
    named = sorted((CATEGORIES[c], b) for b, c in zip(boxes, classes))
    assert [n for n, _ in named] == ["bottom", "footwear", "footwear", "top"]
    bottom = named[0][1]
    assert bottom[0] == pytest.approx(120 / 400, abs=0.01) and bottom[2] == pytest.approx(280 / 400, abs=0.01)
    assert bottom[1] == pytest.approx(260 / 600, abs=0.01) and bottom[3] == pytest.approx(500 / 600, abs=0.01)
    shoes = sorted(b for n, b in named if n == "footwear")
    assert shoes[0][2] < shoes[1][0]  # two separate boxes
    assert shoes[0][0] == pytest.approx(100 / 400, abs=0.01)


def test_connected_components_are_8_connected():
    mask = np.zeros((6, 6), dtype=bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one component
    mask[4:6, 4:6] = True
    comps = sorted(detection_data.connected_components(mask))
    assert comps == [(0, 0, 2, 2, 2), (4, 4, 6, 6, 4)]


def test_split_is_fixed_disjoint_and_15_percent():
    names = [f"{i:04d}" for i in range(1, 851)]
    train, val = detection_data.split(names)
    assert len(val) == round(0.15 * 850) and len(train) + len(val) == 850
    assert not set(train) & set(val)
    assert detection_data.split(list(reversed(names))) == (train, val)  # order of input does not matter
    assert detection_data.split(names, seed=1)[1] != val


# ---------------------------------------------------------------------------------------------
# AP code
# ---------------------------------------------------------------------------------------------
def test_iou_matrix():
    a = np.array([[0, 0, 2, 2]])
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]])
    assert iou_matrix(a, b)[0] == pytest.approx([1 / 7, 1.0, 0.0])


def test_average_precision_hand_made_case():
    gts = {"a": np.array([[0, 0, 10, 10]]), "b": np.array([[0, 0, 10, 10]])}
    dets = [
        ("a", 0.9, [0, 0, 10, 10]),  # TP
        ("a", 0.8, [0, 0, 10, 10]),  # duplicate of a matched box: FP
        ("b", 0.7, [0, 0, 10, 8]),  # IoU 0.8: TP at 0.5, FP at 0.85
    ]
    # precision 1, .5, .667 at recall .5, .5, 1 -> envelope 1 up to recall .5, then 2/3 (COCO 101 points)
    assert average_precision(dets, gts, 0.5) == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101)
    assert average_precision(dets, gts, 0.85) == pytest.approx(51 / 101)
    assert average_precision([], gts, 0.5) == 0.0
    assert math.isnan(average_precision(dets, {"a": np.zeros((0, 4))}, 0.5))
    # Ranking matters: the same detections with the FP first score lower.
    worse = [("a", 0.95, [20, 20, 30, 30])] + dets
    assert average_precision(worse, gts, 0.5) < average_precision(dets, gts, 0.5)


def test_detection_metrics_skip_classes_without_ground_truth():
    cats = ("top", "bag")
    dets = [[("a", 0.9, [0, 0, 1, 1])], [("a", 0.9, [0, 0, 1, 1])]]
    gts = [{"a": np.array([[0, 0, 1, 1]])}, {"a": np.zeros((0, 4))}]
    m = detection_metrics(dets, gts, cats)
    assert m["AP50"] == {"top": 1.0, "bag": None}
    assert m["mAP50"] == 1.0 and m["mAP50:95"] == 1.0


# ---------------------------------------------------------------------------------------------
# Letterbox geometry
# ---------------------------------------------------------------------------------------------
def test_letterbox_keeps_aspect_and_maps_boxes_back():
    image = Image.new("RGB", (300, 200), (255, 0, 0))  # landscape into a portrait canvas
    canvas, scale, pad_x, pad_y = letterbox(image, (480, 320))
    assert canvas.shape == (480, 320, 3) and canvas.dtype == np.float32
    assert scale == pytest.approx(320 / 300) and pad_x == 0 and pad_y > 0
    assert canvas[0, 0, 1] == 114 and canvas[240, 160, 0] == 255  # padding grey, photo red
    # A canvas box covering the whole photo maps back to (0, 0, 1, 1).
    photo_box = [[pad_x, pad_y, pad_x + 300 * scale, pad_y + 200 * scale]]
    assert to_photo_boxes(photo_box, scale, pad_x, pad_y, 300, 200)[0] == pytest.approx([0, 0, 1, 1], abs=1e-6)


# ---------------------------------------------------------------------------------------------
# The committed detector on real photos
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def detector():
    if not DEFAULT_WEIGHTS.exists():
        pytest.fail(f"committed detector weights are missing: {DEFAULT_WEIGHTS}")
    return ArticleDetector()


def test_detector_identity(detector):
    assert detector.categories == ("top", "bottom", "dress", "footwear", "bag")
    assert detector.version.startswith("yolov8-mobilenetv2-")
    assert ArticleDetector().version == detector.version
    assert ArticleDetector(flip_tta=True).version == detector.version.replace("-fliptta", "") + "-fliptta"


@pytest.mark.parametrize("stem", VALIDATION_LOOKS)
def test_full_body_photo_yields_garment_and_footwear(detector, stem):
    image = Image.open(LOOKS / f"{stem}.jpg")
    found = detector.detect(image, min_confidence=0.25)
    assert all(isinstance(d, Detection) for d in found)
    cats = {d.category for d in found}
    assert cats & {"top", "dress"}, found
    assert "footwear" in cats, found
    for d in found:
        x1, y1, x2, y2 = d.box
        assert 0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0
        assert 0.25 <= d.confidence <= 1.0
    assert [d.confidence for d in found] == sorted((d.confidence for d in found), reverse=True)
    # One article, one category: no two detections cover the same region.
    for i, a in enumerate(found):
        for b in found[i + 1:]:
            assert iou_matrix(np.array([a.box]), np.array([b.box]))[0, 0] <= 0.8, (a, b)
    # Footwear sits in the lower part of a full-body photo, tops in the upper half.
    assert all(d.box[3] > 0.6 for d in found if d.category == "footwear")
    assert all((d.box[1] + d.box[3]) / 2 < 0.6 for d in found if d.category == "top")


def test_min_confidence_filters_and_batch_matches_single(detector):
    images = [Image.open(LOOKS / f"{stem}.jpg") for stem in VALIDATION_LOOKS[:2]]
    single = [detector.detect(im, min_confidence=0.1) for im in images]
    batch = detector.detect_batch(images, min_confidence=0.1)
    for s, b in zip(single, batch):
        assert [d.category for d in s] == [d.category for d in b]
        assert np.allclose([d.box for d in s], [d.box for d in b], atol=1e-3)
    strict = detector.detect(images[0], min_confidence=0.9)
    assert all(d.confidence >= 0.9 for d in strict)
    assert len(strict) <= len(single[0])
    assert detector.detect_batch([]) == []


def test_flipped_photo_gives_mirrored_boxes(detector):
    image = Image.open(LOOKS / f"{VALIDATION_LOOKS[0]}.jpg")
    normal = detector.detect(image, min_confidence=0.4)
    mirrored = detector.detect(image.transpose(Image.FLIP_LEFT_RIGHT), min_confidence=0.4)
    for d in normal:
        if d.category not in {"top", "bottom", "dress"}:
            continue
        twins = [m for m in mirrored if m.category == d.category]
        assert twins, d
        flipped = (1 - d.box[2], d.box[1], 1 - d.box[0], d.box[3])
        best = max(iou_matrix(np.array([flipped]), np.array([m.box for m in twins]))[0])
        assert best > 0.7


def test_weights_load_once_across_threads(detector):
    from ml import detect

    image = Image.open(LOOKS / f"{VALIDATION_LOOKS[1]}.jpg").convert("RGB")
    results, errors = [], []

    def work():
        try:
            results.append(ArticleDetector().detect(image))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 3
    assert len([k for k in detect._models if k[0] == str(DEFAULT_WEIGHTS.resolve())]) == 1
    assert all([d.category for d in r] == [d.category for d in results[0]] for r in results)
