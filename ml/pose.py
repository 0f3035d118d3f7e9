"""Full-body pose gate: is this photo a whole outfit worn by one person?

Runs MediaPipe's two pose models (Apache-2.0, taken from the ``mediapipe==0.10.21`` wheel, see
``ml/weights/README.md``) with the TensorFlow Lite interpreter, the way MediaPipe's own graph does:

1. ``pose_detection.tflite`` (224×224, letterboxed, values in [-1, 1]) → SSD anchors decoded into a
   person box plus 4 alignment keypoints (hip centre, a point encoding body size and rotation, …);
   the best detection is kept (weighted non-maximum suppression of its cluster).
2. the region of interest: centred on the hips, side 2.5 × hip-to-"size point" distance, rotated so
   the body is upright (``AlignmentPointsRectsCalculator`` + ``RectTransformationCalculator``).
3. ``pose_landmark_full.tflite`` (256×256, values in [0, 1]) on that rotated crop → 33 landmarks with
   visibility and presence, projected back into the original image.

A photo is a *full shot* when the nose, both shoulders, both hips and at least one ankle are
visible, and the body they draw is plausible for an outfit photo: upright (nose above shoulders
above hips above the ankle, the nose→ankle line within ``max_tilt_degrees`` of vertical) and tall
(nose to ankle ≥ ``min_body_height`` of the image height). The geometric check removes the
"people" the landmark model hallucinates in shoe and watch close-ups. Every threshold is a
constructor argument.
"""
from __future__ import annotations

import math
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["PoseGate", "PoseResult", "LANDMARK_NAMES"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DETECTOR_FILE = "pose_detection.tflite"
LANDMARK_FILE = "pose_landmark_full.tflite"

#: The 33 BlazePose landmarks, in model order.
LANDMARK_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
)
NOSE, L_SHOULDER, R_SHOULDER, L_HIP, R_HIP, L_ANKLE, R_ANKLE = 0, 11, 12, 23, 24, 27, 28

_DET_SIZE = 224
_LMK_SIZE = 256


@dataclass(frozen=True)
class PoseResult:
    """What the gate saw.

    ``keypoints`` are the 33 BlazePose landmarks as ``(x, y, visibility)`` with x, y normalised to
    the original image (0..1, may fall slightly outside when a point is out of frame); empty when
    no person was found. ``score`` in 0..1 is the weakest of the required evidences (person
    presence, nose, shoulders, hips, best ankle), 0 when the body is not upright and tall.
    """

    is_full_shot: bool
    score: float
    keypoints: list = field(default_factory=list)
    person_score: float = 0.0
    #: the person detector found someone (``keypoints`` stay empty when the quick test ruled a full shot out
    #: before the landmark model ran)
    person_seen: bool = False
    #: the person detector's body circle as fractions of the image height: (hip centre height, radius); empty
    #: when no person was seen
    body: tuple = ()


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -100.0, 100.0)))


def _ssd_anchors() -> np.ndarray:
    """MediaPipe ``SsdAnchorsCalculator`` for pose_detection: (2254, 2) anchor centres.

    num_layers 5, strides 8,16,32,32,32, aspect ratio 1 plus the interpolated anchor, fixed anchor
    size (w = h = 1): layers with the same stride share one feature map.
    """
    strides = [8, 16, 32, 32, 32]
    anchors = []
    layer = 0
    while layer < len(strides):
        per_location = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            per_location += 2  # aspect ratio 1.0 + interpolated scale
            last += 1
        size = math.ceil(_DET_SIZE / strides[layer])
        for y in range(size):
            for x in range(size):
                for _ in range(per_location):
                    anchors.append(((x + 0.5) / size, (y + 0.5) / size))
        layer = last
    return np.asarray(anchors, dtype=np.float32)


def _make_interpreter(path: Path, num_threads: int | None):
    """A TFLite interpreter: ai_edge_litert when installed, else TensorFlow's own."""
    try:  # pragma: no cover - depends on the environment
        from ai_edge_litert.interpreter import Interpreter  # type: ignore
    except ImportError:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


class PoseGate:
    """Decides whether a photo shows a whole person (a full shot) with MediaPipe pose models."""

    version = "mediapipe-pose-full-0.10.21/gate-3"

    def __init__(
        self,
        *,
        weights_dir: str | os.PathLike | None = None,
        min_person_score: float = 0.5,
        min_presence: float = 0.5,
        nose_visibility: float = 0.5,
        shoulder_visibility: float = 0.5,
        hip_visibility: float = 0.5,
        ankle_visibility: float = 0.3,
        min_body_height: float = 0.45,
        max_tilt_degrees: float = 30.0,
        quick_reject: bool = True,
        max_feet_height: float = 1.35,
        max_body_radius: float = 0.85,
        max_hip_height: float = 0.85,
        num_threads: int | None = None,
    ):
        self.weights_dir = Path(weights_dir) if weights_dir else WEIGHTS_DIR
        for name in (DETECTOR_FILE, LANDMARK_FILE):
            if not (self.weights_dir / name).is_file():
                raise FileNotFoundError(f"pose model weights missing: {self.weights_dir / name}")
        self.min_person_score = float(min_person_score)
        self.min_presence = float(min_presence)
        self.nose_visibility = float(nose_visibility)
        self.shoulder_visibility = float(shoulder_visibility)
        self.hip_visibility = float(hip_visibility)
        self.ankle_visibility = float(ankle_visibility)
        self.min_body_height = float(min_body_height)
        self.max_tilt_degrees = float(max_tilt_degrees)
        self.quick_reject = bool(quick_reject)
        self.max_feet_height = float(max_feet_height)
        self.max_body_radius = float(max_body_radius)
        self.max_hip_height = float(max_hip_height)
        self.num_threads = num_threads  # None: ``ml.loading.model_threads()``, else 2 (resolved when loading)
        self._anchors = _ssd_anchors()
        self._lock = threading.Lock()
        self._detector = None
        self._landmarker = None

    # -- models -------------------------------------------------------------------------------
    def _load(self):
        if self._detector is None:
            from .loading import model_threads

            threads = self.num_threads if self.num_threads is not None else (model_threads() or 2)
            self._detector = _make_interpreter(self.weights_dir / DETECTOR_FILE, threads)
            self._landmarker = _make_interpreter(self.weights_dir / LANDMARK_FILE, threads)
            out = {d["name"]: d for d in self._detector.get_output_details()}
            # regressors (…, 12) and classificators (…, 1)
            self._det_in = self._detector.get_input_details()[0]["index"]
            self._det_boxes = next(d["index"] for d in out.values() if d["shape"][-1] == 12)
            self._det_scores = next(d["index"] for d in out.values() if d["shape"][-1] == 1)
            lmk_out = self._landmarker.get_output_details()
            self._lmk_in = self._landmarker.get_input_details()[0]["index"]
            self._lmk_points = next(d["index"] for d in lmk_out if tuple(d["shape"]) == (1, 195))
            self._lmk_flag = next(d["index"] for d in lmk_out if tuple(d["shape"]) == (1, 1))

    # -- stage 1: person detection ------------------------------------------------------------
    def _detect_person(self, image: Image.Image):
        """Best person: (score, keypoints (4, 2) in original pixels) or None."""
        w, h = image.size
        scale = _DET_SIZE / max(w, h)
        rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
        pad_x, pad_y = (_DET_SIZE - rw) // 2, (_DET_SIZE - rh) // 2
        canvas = np.full((_DET_SIZE, _DET_SIZE, 3), -1.0, dtype=np.float32)  # black padding
        resized = np.asarray(image.resize((rw, rh), Image.BILINEAR), dtype=np.float32)
        canvas[pad_y:pad_y + rh, pad_x:pad_x + rw] = resized / 127.5 - 1.0
        self._detector.set_tensor(self._det_in, canvas[None])
        self._detector.invoke()
        raw = self._detector.get_tensor(self._det_boxes)[0]
        scores = _sigmoid(self._detector.get_tensor(self._det_scores)[0, :, 0])
        best = int(np.argmax(scores))
        if scores[best] < self.min_person_score:
            return None, float(scores[best])
        anchors = self._anchors
        cx = raw[:, 0] / _DET_SIZE + anchors[:, 0]
        cy = raw[:, 1] / _DET_SIZE + anchors[:, 1]
        bw = raw[:, 2] / _DET_SIZE
        bh = raw[:, 3] / _DET_SIZE
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        kps = raw[:, 4:12].reshape(-1, 4, 2) / _DET_SIZE + anchors[:, None, :]
        # weighted NMS of the best detection's cluster (IoU > 0.3), as MediaPipe does
        candidates = np.nonzero(scores >= self.min_person_score)[0]
        b0 = boxes[best]
        cb = boxes[candidates]
        ix = np.clip(np.minimum(cb[:, 2], b0[2]) - np.maximum(cb[:, 0], b0[0]), 0, None)
        iy = np.clip(np.minimum(cb[:, 3], b0[3]) - np.maximum(cb[:, 1], b0[1]), 0, None)
        inter = ix * iy
        area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
        iou = inter / np.maximum(area(cb) + area(b0) - inter, 1e-9)
        cluster = candidates[iou > 0.3]
        weights = scores[cluster][:, None, None]
        kp = (kps[cluster] * weights).sum(0) / weights.sum()
        # undo the letterbox: normalised 224-canvas → original pixels
        kp_px = np.empty_like(kp)
        kp_px[:, 0] = (kp[:, 0] * _DET_SIZE - pad_x) / scale
        kp_px[:, 1] = (kp[:, 1] * _DET_SIZE - pad_y) / scale
        return kp_px, float(scores[best])

    # -- stage 2: landmarks on the rotated region of interest ---------------------------------
    @staticmethod
    def _roi_affine(kp_px: np.ndarray):
        """Affine (a, b, c, d, e, f) mapping 256×256 ROI pixels to image pixels."""
        (x0, y0), (x1, y1) = kp_px[0], kp_px[1]
        side = 2.0 * math.hypot(x1 - x0, y1 - y0) * 1.25
        side = max(side, 1.0)
        rotation = math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0)
        rotation = rotation - 2 * math.pi * math.floor((rotation + math.pi) / (2 * math.pi))
        cos, sin = math.cos(rotation), math.sin(rotation)
        k = side / _LMK_SIZE
        a, b = cos * k, -sin * k
        d, e = sin * k, cos * k
        c = x0 - (cos - sin) * side / 2
        f = y0 - (sin + cos) * side / 2
        return a, b, c, d, e, f

    def _landmarks(self, image: Image.Image, kp_px: np.ndarray):
        affine = self._roi_affine(kp_px)
        crop = image.transform(
            (_LMK_SIZE, _LMK_SIZE), Image.AFFINE, affine, resample=Image.BILINEAR, fillcolor=(0, 0, 0)
        )
        tensor = np.asarray(crop, dtype=np.float32)[None] / 255.0
        self._landmarker.set_tensor(self._lmk_in, tensor)
        self._landmarker.invoke()
        raw = self._landmarker.get_tensor(self._lmk_points)[0].reshape(39, 5)[:33]
        flag = float(self._landmarker.get_tensor(self._lmk_flag)[0, 0])
        if not 0.0 <= flag <= 1.0:
            flag = float(_sigmoid(flag))
        a, b, c, d, e, f = affine
        xs = a * raw[:, 0] + b * raw[:, 1] + c
        ys = d * raw[:, 0] + e * raw[:, 1] + f
        visibility = _sigmoid(raw[:, 3])
        presence = _sigmoid(raw[:, 4])
        return xs, ys, visibility, presence, flag

    # -- the gate -----------------------------------------------------------------------------
    def check(self, image: Image.Image) -> PoseResult:
        """Run the gate on an RGB PIL image (use ``ml.images.load_image`` first)."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        w, h = image.size
        with self._lock:
            self._load()
            kp_px, person_score = self._detect_person(image)
            if kp_px is None:
                return PoseResult(False, 0.0, [], person_score)
            body = self.body_circle(kp_px, h)
            if self.quick_reject and not self.could_be_full_shot(*body):
                return PoseResult(False, 0.0, [], person_score, person_seen=True, body=body)
            xs, ys, visibility, presence, flag = self._landmarks(image, kp_px)
        # a landmark counts only when visible and inside the frame (2 % margin)
        inside = (xs >= -0.02 * w) & (xs <= 1.02 * w) & (ys >= -0.02 * h) & (ys <= 1.02 * h)
        seen = np.minimum(visibility, presence) * inside
        keypoints = [
            (float(x / w), float(y / h), float(v)) for x, y, v in zip(xs, ys, seen)
        ]
        nose = float(seen[NOSE])
        shoulders = float(min(seen[L_SHOULDER], seen[R_SHOULDER]))
        hips = float(min(seen[L_HIP], seen[R_HIP]))
        ankle_index = L_ANKLE if seen[L_ANKLE] >= seen[R_ANKLE] else R_ANKLE
        ankle = float(seen[ankle_index])
        visible = (
            flag >= self.min_presence
            and nose >= self.nose_visibility
            and shoulders >= self.shoulder_visibility
            and hips >= self.hip_visibility
            and ankle >= self.ankle_visibility
        )
        score = float(min(flag, nose, shoulders, hips, ankle))
        if not self._plausible_body(xs / w, ys / h, ankle_index, w / h):
            score = 0.0
            visible = False
        return PoseResult(bool(visible), score, keypoints, person_score, person_seen=True, body=body)

    @staticmethod
    def body_circle(kp_px: np.ndarray, height: int) -> tuple:
        """(hip centre height, body circle radius) as fractions of the image height."""
        (hip_x, hip_y), (size_x, size_y) = kp_px[0], kp_px[1]
        return float(hip_y / height), float(math.hypot(size_x - hip_x, size_y - hip_y) / height)

    def could_be_full_shot(self, hips: float, radius: float) -> bool:
        """The quick test, from the person detector's body circle alone (before the landmark model runs).

        The detector gives the hip centre and a point whose distance to it is the radius of a circle around
        the whole body. A person whose hips sit low in the frame, whose circle is huge, or whose feet would be
        far below the bottom edge is a close-up of part of a body — a model wearing a shirt, trousers cut at
        the knee — and cannot pass the gate. Thresholds (fractions of the image height) sit well outside what
        every full shot of the street sets showed (``ml/weights/POSE.md``, ``python -m ml.evaluate pose``:
        ``quick_test.full_shot_body_max``); ``quick_reject=False`` always runs the landmarks.
        """
        return hips + radius <= self.max_feet_height and radius <= self.max_body_radius and hips <= self.max_hip_height

    def _plausible_body(self, x, y, ankle_index, aspect) -> bool:
        """Upright and tall: nose < shoulders < hips < ankle (downwards), small tilt, tall enough."""
        shoulder_y = (y[L_SHOULDER] + y[R_SHOULDER]) / 2
        hip_y = (y[L_HIP] + y[R_HIP]) / 2
        if not y[NOSE] < shoulder_y < hip_y < y[ankle_index]:
            return False
        height = y[ankle_index] - y[NOSE]  # fractions of the image height
        # x and y are normalised separately: rescale x by the aspect ratio to measure the angle
        dx = (x[ankle_index] - x[NOSE]) * aspect
        tilt = math.degrees(math.atan2(abs(dx), height))
        return height >= self.min_body_height and tilt <= self.max_tilt_degrees
