"""Gender of the clothes in a photo ("Men" / "Women"), for photos that come without product data.

The model is the ImageNet MobileNetV2 of ``ml.backbone`` (frozen) with a small head trained on the
catalogue's Men/Women labels (``python -m ml.train_gender``; model card ``ml/weights/GENDER.md``).
The whole model (backbone + head) is committed as one weights file, so the app needs no other
download. Each photo is letterboxed on white to 224×224, like the catalogue photos it learnt from;
the prediction averages the photo and its mirror image. When the pose gate found a person, the
head-to-hips crop is classified instead of the whole photo (see ``upper_body_crop``): a full-body
street photo is far from anything in the catalogue, its upper half much less so.

    from ml.gender import GenderClassifier
    label, confidence = GenderClassifier().predict(pil_image)   # ("Women", 0.97)

Weights load lazily, once per process (thread-safe), on the first ``predict`` call.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ml.loading import CompiledModel, ModelCache

__all__ = ["GenderClassifier", "LABELS", "build_gender_model", "build_head", "pair_head", "upper_body_crop", "VERSION"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
VERSION = "gender-mnv2-v2"
DEFAULT_WEIGHTS = WEIGHTS_DIR / f"{VERSION}.weights.h5"
INPUT_SIZE = 224
FEATURE_DIM = 1280
LABELS = ("Men", "Women")

_models = ModelCache()


def build_head(hidden: int = 256, dropout: float = 0.3, name: str = "gender_head"):
    """The trainable part: pooled 1280-d backbone features → probabilities of LABELS."""
    import keras

    inputs = keras.Input((FEATURE_DIM,), name="pooled_features")
    x = keras.layers.Dropout(dropout, name="gender_dropout_in")(inputs)
    x = keras.layers.Dense(hidden, activation="relu", name="gender_hidden")(x)
    x = keras.layers.Dropout(dropout, name="gender_dropout")(x)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax", name="gender_logits")(x)
    return keras.Model(inputs, outputs, name=name)


def build_feature_model(backbone_weights="imagenet"):
    """MobileNetV2 (ImageNet, RGB 0..255 input) → global average pool (1280-d)."""
    import keras

    from ml.backbone import mobilenet_v2

    backbone = mobilenet_v2(input_shape=(INPUT_SIZE, INPUT_SIZE, 3), include_top=False,
                            weights=backbone_weights)
    pooled = keras.layers.GlobalAveragePooling2D(name="gender_pool")(backbone.output)
    return keras.Model(backbone.input, pooled, name="gender_features")


def pair_head(first, second):
    """Two heads on the same pooled features as one: the mean of their logits (the normalised geometric mean of
    their probabilities), so a model keeps one backbone pass for both."""
    import keras

    inputs = keras.Input((FEATURE_DIM,), name="pooled_features")
    logs = [keras.layers.Lambda(lambda p: keras.ops.log(p + 1e-7), name=f"log_{head.name}")(head(inputs))
            for head in (first, second)]
    outputs = keras.layers.Softmax(name="gender_pair")(keras.layers.Average(name="gender_pair_mean")(logs))
    return keras.Model(inputs, outputs, name="gender_pair_head")


def build_gender_model(backbone_weights="imagenet", head=None, hidden: int = 256, heads: int = 1):
    """Backbone + pooling + head as one model: RGB 0..255 (224×224) → probabilities of LABELS. ``heads=2``: the
    catalogue head and a street head averaged (``pair_head``), the layout ``python -m ml.train_gender --keep-head``
    writes."""
    import keras

    features = build_feature_model(backbone_weights)
    if head is None:
        head = (build_head(hidden) if heads == 1
                else pair_head(build_head(hidden, name="gender_head"), build_head(hidden, name="street_head")))
    return keras.Model(features.input, head(features.output), name="gender_classifier")


def upper_body_crop(image, keypoints, min_visibility: float = 0.3):
    """The head-to-hips crop of the person drawn by pose ``keypoints`` (33 × (x, y, visibility),
    normalised), which looks like a catalogue photo of a top worn by a model; None when the head,
    shoulders or hips are not seen."""
    if not keypoints or len(keypoints) < 25:
        return None
    k = np.asarray(keypoints, dtype=np.float64)
    needed = [0, 11, 12, 23, 24]
    if (k[needed, 2] < min_visibility).any():
        return None
    w, h = image.size
    xs = k[[0, 7, 8, 11, 12, 13, 14, 23, 24], 0] * w
    shoulder_width = abs(k[11, 0] - k[12, 0]) * w
    top = (k[0, 1] * h) - 0.9 * shoulder_width  # room for the hair above the nose
    bottom = ((k[23, 1] + k[24, 1]) / 2) * h + 0.25 * shoulder_width
    margin = 0.35 * shoulder_width
    left, right = xs.min() - margin, xs.max() + margin
    box = (int(max(0, left)), int(max(0, top)), int(min(w, right)), int(min(h, bottom)))
    if box[2] - box[0] < 16 or box[3] - box[1] < 16:
        return None
    return image.crop(box)


def prepare(image, size: int = INPUT_SIZE) -> np.ndarray:
    """Letterbox a PIL image on white to size × size → float32 array (RGB 0..255)."""
    from ml.product_photos import letterbox

    return np.asarray(letterbox(image, size), dtype=np.float32)


class GenderClassifier:
    """Predicts "Men" or "Women" for a photo, with a confidence in 0.5..1."""

    def __init__(self, weights=None, *, face: bool = True):
        self.weights = Path(weights) if weights else DEFAULT_WEIGHTS
        meta_path = Path(str(self.weights) + ".json")
        self.meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        self.version = self.meta.get("version", VERSION if self.weights == DEFAULT_WEIGHTS
                                     else self.weights.stem.replace(".weights", ""))
        self.hidden = int(self.meta.get("hidden", 256))
        # street full shots look unlike the catalogue: their crops lean "Men"; this logit offset
        # (calibrated on cue-labelled street photos by ml.train_gender) re-centres them
        self.full_shot_logit_offset = float(self.meta.get("full_shot_logit_offset", 0.0))
        # full shots: the face of the person (ml.face_gender), fused with the body's prediction by
        # parameters calibrated on cue-labelled street photos: the body model's own (``face_fusion`` in its
        # record, when its training calibrated them) or else face-gender-v1.onnx.json's
        self.face = None
        self.face_fusion = {}
        if face:
            from ml.face_gender import DEFAULT_FACE_WEIGHTS, FaceGender

            fusion_path = Path(str(DEFAULT_FACE_WEIGHTS) + ".json")
            if self.meta.get("face_fusion"):
                self.face_fusion = dict(self.meta["face_fusion"])
            elif fusion_path.is_file():
                self.face_fusion = json.loads(fusion_path.read_text())
            if float(self.face_fusion.get("weight", 0.0)) > 0:
                self.face = FaceGender(
                    min_visibility=self.face_fusion["min_visibility"],
                    min_eye_distance=self.face_fusion["min_eye_distance"],
                    max_yaw=self.face_fusion["max_yaw"])
                self.version = f"{self.version}+{self.face.version}"

    def _loaded(self) -> CompiledModel:
        return _models.get_or_build(str(self.weights.resolve()), self._build)

    def _build(self) -> CompiledModel:
        if not self.weights.exists():
            raise FileNotFoundError(f"gender classifier weights not found: {self.weights}")
        model = build_gender_model(backbone_weights=None, hidden=self.hidden, heads=int(self.meta.get("heads", 1)))
        model.load_weights(self.weights)
        return CompiledModel(model, INPUT_SIZE)

    def load(self):
        """Load the weights now (otherwise the first ``predict`` call does)."""
        self._loaded()
        if self.face is not None:
            self.face.load()
        return self

    def probabilities(self, images, batch_size: int = 16) -> np.ndarray:
        """(n, 2) probabilities of ("Men", "Women"), averaged over each photo and its mirror."""
        images = list(images)
        if not images:
            return np.zeros((0, len(LABELS)), np.float32)
        run = self._loaded().run
        out = []
        for start in range(0, len(images), batch_size):
            batch = np.stack([prepare(im) for im in images[start:start + batch_size]])
            both = np.concatenate([batch, batch[:, :, ::-1]])
            probs = np.asarray(run(both), dtype=np.float32)
            n = len(batch)
            out.append((probs[:n] + probs[n:]) / 2)
        return np.concatenate(out)

    def body_p_women(self, image, *, keypoints=None) -> float:
        """P(Women) from the clothes: the head-to-hips crop when pose ``keypoints`` of a person are
        given (with the full-shot logit offset), otherwise the whole photo."""
        crop = upper_body_crop(image, keypoints) if keypoints else None
        p_women = float(self.probabilities([crop if crop is not None else image])[0][1])
        if crop is not None and self.full_shot_logit_offset:
            p_women = float(np.clip(p_women, 1e-7, 1 - 1e-7))
            logit = np.log(p_women / (1 - p_women)) + self.full_shot_logit_offset
            p_women = float(1 / (1 + np.exp(-logit)))
        return p_women

    def predict(self, image, *, keypoints=None) -> tuple[str, float]:
        """("Men" | "Women", confidence) for one PIL image.

        With pose ``keypoints`` of a person (``PoseResult.keypoints``), the head-to-hips crop is
        classified (street photos then look like the catalogue's model shots); otherwise the
        whole photo. When the person's face is seen (frontal, large enough), its own prediction
        (``ml.face_gender``) is fused with the clothes' one: a logit sum with calibrated weights.
        """
        p_women = self.body_p_women(image, keypoints=keypoints)
        if keypoints and self.face is not None:
            face = self.face.p_women(image, keypoints)
            if face is not None:
                from ml.face_gender import fuse

                p_women = float(fuse([p_women], [face[0]], float(self.face_fusion["weight"]),
                                     float(self.face_fusion.get("bias", 0.0)))[0])
        probs = np.array([1 - p_women, p_women], dtype=np.float32)
        index = int(np.argmax(probs))
        return LABELS[index], float(probs[index])
