"""Article detector: finds top, bottom, dress, footwear and bag boxes in a full-shot photo.

A KerasCV ``YOLOV8Detector`` on the ImageNet MobileNetV2 of ``ml.backbone`` (stride 8/16/32
features taken from the expansion layers, narrowed by 1x1 convolutions to 64/128/256 channels for
the YOLOv8 path-aggregation FPN). Photos are letterboxed (aspect ratio kept, grey padding) into
a portrait canvas, by default 480x320 (height x width), which suits full-body shots.

Usage::

    detector = ArticleDetector()              # cheap: reads the model card's JSON only
    detector.detect(pil_image)                # -> [Detection(category, confidence, box), ...]

Weights load lazily, once per process (thread-safe), on the first ``detect``. TensorFlow is
imported only then, so creating an ``ArticleDetector`` before a Celery worker forks is safe.
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ml.boxes import iou
from ml.loading import ModelCache
from ml.taxonomy import LOOK_CATEGORIES

CATEGORIES = LOOK_CATEGORIES
WEIGHTS_DIR = Path(__file__).with_name("weights")
DEFAULT_WEIGHTS = WEIGHTS_DIR / "detector.weights.h5"
PAD_VALUE = 114
# Backbone layers feeding the FPN (torchvision names, see ml.backbone) and the neck widths.
FEATURE_LAYERS = {"P3": "features_7_conv_0_relu6", "P4": "features_14_conv_0_relu6", "P5": "features_18_relu6"}
NECK_CHANNELS = {"P3": 64, "P4": 128, "P5": 256}
# detect(): one article, one category. NMS is per class (as evaluation needs), so the same region
# can come back as, say, a bag and a shoe; of detections overlapping more than this, the most
# confident is kept.
DUPLICATE_IOU = 0.8
#: Confidence floors of the shipped detector for the categories whose best floor is not the recommender's
#: ``MIN_ARTICLE_CONFIDENCE`` (0.25): detections under their category's floor are neither stored nor shown.
#: Chosen with the floor sweep of ``python -m ml.evaluate street-to-shop --mode look`` (missed garments and rows
#: on photos without the garment counted alike; ml/weights/DETECTOR.md, "Confidence floors"). The recommender's
#: default ``BUY_THE_LOOK["ARTICLE_FLOORS"]``; another detector comes with its own.
ARTICLE_FLOORS = {"footwear": 0.15, "bag": 0.15, "dress": 0.1}
#: A second opinion for the categories the detector confuses with a layered outfit: a box of such a category is
#: kept only when the whole-photo category head (``ml.category_head``, over the box's own vector) gives it at
#: least this probability. A "dress" found on a long coat over trousers is mostly a coat to the head. Chosen
#: with the look mode's floor sweep like the floors (ml/weights/DETECTOR.md, "Confidence floors").
HEAD_CHECKS = {"dress": 0.5}


@dataclass(frozen=True)
class Detection:
    """One article found in a photo; ``box`` is (x1, y1, x2, y2) normalised to 0..1 of the photo."""

    category: str
    confidence: float
    box: tuple[float, float, float, float]


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------
def build_detector(image_size=(480, 320), backbone_weights="imagenet", fpn_depth=1):
    """The YOLOv8 detector (uncompiled). ``image_size`` is (height, width), multiples of 32.

    Inputs are RGB floats 0..255 of shape (batch, height, width, 3); boxes are "xyxy" pixels.
    """
    import keras
    import keras_cv

    from ml.backbone import mobilenet_v2

    height, width = image_size
    if height % 32 or width % 32:
        raise ValueError(f"image size {image_size} must be multiples of 32")
    base = mobilenet_v2(input_shape=(height, width, 3), include_top=False, weights=backbone_weights)
    outputs = []
    for level, layer_name in FEATURE_LAYERS.items():
        x = base.get_layer(layer_name).output
        x = keras.layers.Conv2D(NECK_CHANNELS[level], 1, use_bias=False, name=f"neck_{level}_conv")(x)
        x = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.97, name=f"neck_{level}_bn")(x)
        x = keras.layers.Activation("swish", name=f"neck_{level}")(x)
        outputs.append(x)
    pyramid = keras.Model(base.inputs, outputs, name="mobilenet_v2_pyramid")
    pyramid.pyramid_level_inputs = {level: f"neck_{level}" for level in FEATURE_LAYERS}
    model = keras_cv.models.YOLOV8Detector(
        backbone=pyramid,
        num_classes=len(CATEGORIES),
        bounding_box_format="xyxy",
        fpn_depth=fpn_depth,
    )
    model.mobilenet = base
    return model


def init_head_priors(model, image_size, expected_objects: float = 5.0):
    """YOLOv8's prior initialisation (as in Ultralytics): class logits start at about
    log(expected objects / classes / anchors of the level) instead of 0 (p=0.5 everywhere), and
    box distribution logits at 1. Early training then spends no steps pushing every background
    anchor down. KerasCV's head initialises these biases to zero."""
    height, width = image_size
    for level, stride in enumerate((8, 16, 32), start=1):
        anchors = (height // stride) * (width // stride)
        cls = model.get_layer(f"yolo_v8_head_{level}_class_3_conv")
        prior = np.log(expected_objects / len(CATEGORIES) / anchors)
        cls.bias.assign(np.full(cls.bias.shape, prior, dtype="float32"))
        box = model.get_layer(f"yolo_v8_head_{level}_box_3_conv")
        box.bias.assign(np.ones(box.bias.shape, dtype="float32"))


def letterbox(image: Image.Image, image_size) -> tuple[np.ndarray, float, float, float]:
    """RGB photo -> (canvas float32 HxWx3 in 0..255, scale, pad_x, pad_y); the photo is centred."""
    height, width = image_size
    image = image.convert("RGB") if image.mode != "RGB" else image
    scale = min(width / image.width, height / image.height)
    new_w, new_h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    resized = image.resize((new_w, new_h), Image.BILINEAR)
    canvas = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
    pad_x, pad_y = (width - new_w) // 2, (height - new_h) // 2
    canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = np.asarray(resized)
    return canvas.astype(np.float32), scale, pad_x, pad_y


class Predictor:
    """A detector model wrapped in a tf.function (forward pass + YOLOv8 decoding + NMS).

    (``model.predict_on_batch`` fails with keras-cv 0.9 on Keras 3, and the built-in decoder drops
    boxes under 0.2 confidence; this uses our own NMS settings.)
    """

    def __init__(self, model, image_size, flip_tta: bool = False):
        import tensorflow as tf

        self.model = model
        self.image_size = tuple(image_size)
        self.flip_tta = bool(flip_tta)
        self._functions = {}
        self._lock = threading.Lock()
        self._tf = tf

    def predict(self, batch: np.ndarray, threshold: float, iou_threshold: float = 0.6, max_detections: int = 50):
        """(B,H,W,3) canvases -> boxes (B,N,4) canvas pixels, confidence (B,N), classes (B,N), num (B,)."""
        key = (float(iou_threshold), int(max_detections))
        with self._lock:
            fn = self._functions.get(key)
            if fn is None:
                fn = self._make_function(*key)
                self._functions[key] = fn
        tf = self._tf
        out = fn(tf.convert_to_tensor(batch, dtype=tf.float32), tf.constant(float(threshold), tf.float32))
        return (out["boxes"].numpy(), out["confidence"].numpy(), out["classes"].numpy(),
                out["num_detections"].numpy())

    def _make_function(self, iou_threshold, max_detections):
        from keras_cv.src.models.object_detection.yolo_v8.yolo_v8_detector import (
            decode_regression_to_boxes, dist2bbox, get_anchors,
        )

        tf = self._tf
        model = self.model
        height, width = self.image_size
        flip_tta = self.flip_tta
        grids = [(height // stride, width // stride) for stride in (8, 16, 32)]

        def decode(raw):
            boxes = decode_regression_to_boxes(raw["boxes"])
            anchor_points, stride_tensor = get_anchors(image_shape=(height, width, 3))
            return dist2bbox(boxes, anchor_points) * stride_tensor[:, None], raw["classes"]

        def mirror_anchors(values):
            """Per pyramid level, reverse the anchor columns (anchors are row-major per level)."""
            parts, start = [], 0
            for h, w in grids:
                part = values[:, start:start + h * w]
                part = tf.reshape(part, (-1, h, w, part.shape[-1]))[:, :, ::-1]
                parts.append(tf.reshape(part, (-1, h * w, values.shape[-1])))
                start += h * w
            return tf.concat(parts, axis=1)

        @tf.function(input_signature=[tf.TensorSpec((None, height, width, 3), tf.float32),
                                      tf.TensorSpec((), tf.float32)], reduce_retracing=True)
        def run(images, threshold):
            # As YOLOV8Detector.decode_predictions, but with per-class NMS over every class score
            # (KerasCV's decoder keeps only the best class of each anchor and suppresses across
            # classes, so a top inside a dress, or a bag next to a shoe, would be lost).
            if flip_tta:
                # Test-time flip: the mirrored photo's predictions, moved back to the anchors they
                # mirror (the anchor grid is symmetric), are averaged with the photo's own.
                n = tf.shape(images)[0]
                boxes, scores = decode(model(tf.concat([images, images[:, :, ::-1]], axis=0), training=False))
                flipped_boxes = mirror_anchors(boxes[n:])
                flipped_boxes = tf.stack([width - flipped_boxes[..., 2], flipped_boxes[..., 1],
                                          width - flipped_boxes[..., 0], flipped_boxes[..., 3]], axis=-1)
                boxes = (boxes[:n] + flipped_boxes) / 2.0
                scores = (scores[:n] + mirror_anchors(scores[n:])) / 2.0
            else:
                boxes, scores = decode(model(images, training=False))
            nms = tf.image.combined_non_max_suppression(
                boxes[:, :, None, :], scores,
                max_output_size_per_class=max_detections, max_total_size=max_detections,
                iou_threshold=iou_threshold, score_threshold=threshold, clip_boxes=False,
            )
            return {"boxes": nms.nmsed_boxes, "confidence": nms.nmsed_scores,
                    "classes": tf.cast(nms.nmsed_classes, tf.int32), "num_detections": nms.valid_detections}

        return run


def _build_predictor(weights_path: Path, image_size, fpn_depth, flip_tta=False) -> Predictor:
    model = build_detector(tuple(image_size), backbone_weights=None, fpn_depth=fpn_depth)
    model.load_weights(str(weights_path))
    return Predictor(model, image_size, flip_tta=flip_tta)


def to_photo_boxes(boxes, scale, pad_x, pad_y, width, height) -> np.ndarray:
    """Canvas pixel xyxy boxes (N,4) -> normalised xyxy of the original photo, clipped to 0..1."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.empty_like(boxes)
    out[:, [0, 2]] = (boxes[:, [0, 2]] - pad_x) / scale / width
    out[:, [1, 3]] = (boxes[:, [1, 3]] - pad_y) / scale / height
    return np.clip(out, 0.0, 1.0)


_models = ModelCache()


def _load_model(weights_path: Path, image_size, fpn_depth, flip_tta=False) -> Predictor:
    key = (str(Path(weights_path).resolve()), tuple(image_size), fpn_depth, bool(flip_tta))
    return _models.get_or_build(key, lambda: _build_predictor(Path(weights_path), image_size, fpn_depth, flip_tta))


def _drop_cross_class_duplicates(found: list[Detection]) -> list[Detection]:
    """Keep, of detections (sorted by confidence) overlapping more than DUPLICATE_IOU, the first."""
    kept: list[Detection] = []
    for d in found:
        if all(iou(d.box, k.box) <= DUPLICATE_IOU for k in kept):
            kept.append(d)
    return kept


def read_model_config(weights_path) -> dict:
    """The JSON next to the weights (``detector.weights.h5`` -> ``detector.json``)."""
    weights_path = Path(weights_path)
    config_path = weights_path.with_name(weights_path.name.replace(".weights.h5", "") + ".json")
    if not config_path.exists():
        raise FileNotFoundError(f"detector config {config_path} is missing (it travels with {weights_path})")
    return json.loads(config_path.read_text())


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------
class ArticleDetector:
    """Finds look articles (top, bottom, dress, footwear, bag) in photos.

    ``weights``: a ``*.weights.h5`` file with its ``*.json`` beside it (default: the committed
    ``ml/weights/detector.weights.h5``). ``flip_tta``: also run the mirrored photo and average
    (about twice the forward cost); None = as the JSON says (``"flip_tta"``, default off).
    """

    categories: tuple[str, ...] = CATEGORIES

    def __init__(self, weights: str | Path | None = None, flip_tta: bool | None = None):
        self.weights_path = Path(weights) if weights is not None else DEFAULT_WEIGHTS
        config = read_model_config(self.weights_path)
        self.image_size = tuple(config["image_size"])
        self.fpn_depth = int(config.get("fpn_depth", 1))
        self.flip_tta = bool(config.get("flip_tta", False) if flip_tta is None else flip_tta)
        if tuple(config.get("categories", CATEGORIES)) != CATEGORIES:
            raise ValueError(f"{self.weights_path}: categories {config.get('categories')} differ from {CATEGORIES}")
        digest = hashlib.sha256(self.weights_path.read_bytes()).hexdigest()[:10]
        self.version = (f"yolov8-mobilenetv2-{self.image_size[0]}x{self.image_size[1]}-{digest}"
                        + ("-fliptta" if self.flip_tta else ""))

    def _model(self) -> Predictor:
        return _load_model(self.weights_path, self.image_size, self.fpn_depth, self.flip_tta)

    def load(self) -> "ArticleDetector":
        """Load the weights now (otherwise the first ``detect`` does it)."""
        self._model()
        return self

    def detect(self, image: Image.Image, min_confidence: float = 0.25) -> list[Detection]:
        """Articles in one photo, most confident first."""
        return self.detect_batch([image], min_confidence=min_confidence)[0]

    def detect_batch(self, images, min_confidence: float = 0.25, max_detections: int = 50) -> list[list[Detection]]:
        """Articles in each of several photos (one forward pass)."""
        images = list(images)
        if not images:
            return []
        model = self._model()
        canvases, geometry = [], []
        for image in images:
            canvas, scale, pad_x, pad_y = letterbox(image, self.image_size)
            canvases.append(canvas)
            geometry.append((scale, pad_x, pad_y, image.width, image.height))
        boxes, confidence, classes, num = model.predict(np.stack(canvases), min_confidence,
                                                        max_detections=max_detections)
        results = []
        for i, (scale, pad_x, pad_y, width, height) in enumerate(geometry):
            found = []
            n = int(num[i])
            photo_boxes = to_photo_boxes(boxes[i, :n], scale, pad_x, pad_y, width, height)
            for j in range(n):
                if confidence[i, j] < min_confidence or classes[i, j] < 0:
                    continue
                box = tuple(float(v) for v in photo_boxes[j])
                if box[2] <= box[0] or box[3] <= box[1]:
                    continue
                found.append(Detection(CATEGORIES[int(classes[i, j])], float(confidence[i, j]), box))
            found.sort(key=lambda d: -d.confidence)
            results.append(_drop_cross_class_duplicates(found))
        return results
