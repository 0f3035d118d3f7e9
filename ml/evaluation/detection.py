"""``python -m ml.evaluate detection --data DIR [--split auto|val|all] [--weights PATH]``.

Ground truth: boxes derived from DIR's masks (``ml.detection_data``; DIR laid out like the street
set: ``photos/``, ``masks/``, ``labels.txt``). ``--split auto`` (default) evaluates only the fixed
validation split when DIR is the set the weights were trained on (recognised by its training
photo names), and every photo otherwise; ``val`` / ``all`` force the choice.

Metrics, COCO-style: per class, detections are ranked by confidence and greedily matched to
unmatched ground truth of the same photo (best IoU first); precision is made monotone and read at
101 recall points. AP50 uses IoU 0.5; mAP50:95 averages IoU 0.50, 0.55, ..., 0.95. Classes without
ground truth are left out of the means. Detections are decoded with a 0.001 confidence floor (the
KerasCV default of 0.2 would understate AP), per-class NMS at IoU 0.6, at most 100 per photo. ``ms_per_image`` is the wall time per photo
of reading the JPEG, letterboxing, the forward pass and NMS, one photo at a time, median after warm-up.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import time
from pathlib import Path

import numpy as np

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)
EVAL_CONFIDENCE = 0.001
EVAL_MAX_DETECTIONS = 100  # per photo, as COCO


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every xyxy box in a (N,4) with every box in b (M,4)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def average_precision(detections, ground_truth, iou_threshold: float) -> float:
    """COCO 101-point AP of one class.

    detections: list of (photo_id, score, box); ground_truth: {photo_id: array (M,4)}.
    Returns nan when there is no ground truth.
    """
    n_gt = sum(len(np.asarray(g).reshape(-1, 4)) for g in ground_truth.values())
    if n_gt == 0:
        return float("nan")
    if not detections:
        return 0.0
    order = sorted(range(len(detections)), key=lambda i: -detections[i][1])
    used = {photo: np.zeros(len(np.asarray(g).reshape(-1, 4)), dtype=bool) for photo, g in ground_truth.items()}
    tp = np.zeros(len(order))
    for rank, i in enumerate(order):
        photo, _, box = detections[i]
        gts = np.asarray(ground_truth.get(photo, np.zeros((0, 4)))).reshape(-1, 4)
        if len(gts) == 0:
            continue
        ious = iou_matrix(np.asarray(box)[None], gts)[0]
        ious[used[photo]] = -1.0
        best = int(np.argmax(ious))
        if ious[best] >= iou_threshold:
            used[photo][best] = True
            tp[rank] = 1.0
    tp_cum = np.cumsum(tp)
    fp_cum = np.cumsum(1.0 - tp)
    recall = tp_cum / n_gt
    precision = tp_cum / np.maximum(tp_cum + fp_cum, 1e-12)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone envelope
    points = np.linspace(0.0, 1.0, 101)
    index = np.searchsorted(recall, points, side="left")
    interpolated = np.where(index < len(precision), precision[np.minimum(index, len(precision) - 1)], 0.0)
    return float(interpolated.mean())


def detection_metrics(detections_by_class, ground_truth_by_class, categories) -> dict:
    """Per-class AP50 and AP50:95, and their means over classes with ground truth."""
    ap50, ap5095 = {}, {}
    for c, name in enumerate(categories):
        dets, gts = detections_by_class[c], ground_truth_by_class[c]
        per_threshold = [average_precision(dets, gts, t) for t in IOU_THRESHOLDS]
        ap50[name] = per_threshold[0]
        ap5095[name] = float(np.mean(per_threshold))
    present = [n for n in categories if not np.isnan(ap50[n])]
    clean = lambda v: None if np.isnan(v) else round(float(v), 4)
    return {
        "AP50": {n: clean(ap50[n]) for n in categories},
        "AP50:95": {n: clean(ap5095[n]) for n in categories},
        "mAP50": round(float(np.mean([ap50[n] for n in present])), 4) if present else None,
        "mAP50:95": round(float(np.mean([ap5095[n] for n in present])), 4) if present else None,
    }


def _ground_truth(names, boxes, n_classes):
    gts = [dict() for _ in range(n_classes)]
    for name in names:
        entry = boxes[name]
        for c in range(n_classes):
            gts[c][name] = np.array([b for b, k in zip(entry.boxes, entry.classes) if k == c],
                                    dtype=np.float64).reshape(-1, 4)
    return gts


def evaluate_predictor(predictor, image_size, data_dir, names, boxes, batch_size=8, progress=True, timing=False):
    """Run a ``ml.detect.Predictor`` over photos and score it against the mask boxes."""
    from PIL import Image

    from ml.detect import CATEGORIES, letterbox, to_photo_boxes

    data_dir = Path(data_dir)
    detections = [[] for _ in CATEGORIES]
    times = []
    step = 1 if timing else batch_size
    chunks = [names[i:i + step] for i in range(0, len(names), step)]
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc="detecting", unit="batch" if step > 1 else "photo")
    warmed = False
    for chunk in chunks:
        started = time.perf_counter()
        canvases, geometry = [], []
        for name in chunk:
            with Image.open(data_dir / "photos" / f"{name}.jpg") as photo:
                photo.load()
                canvas, scale, pad_x, pad_y = letterbox(photo, image_size)
                geometry.append((scale, pad_x, pad_y, photo.width, photo.height))
            canvases.append(canvas)
        if timing and not warmed:
            predictor.predict(np.stack(canvases), EVAL_CONFIDENCE, max_detections=EVAL_MAX_DETECTIONS)  # warm-up
            predictor.predict(np.stack(canvases), EVAL_CONFIDENCE, max_detections=EVAL_MAX_DETECTIONS)
            warmed = True
            started = time.perf_counter()
            canvases = [letterbox(Image.open(data_dir / "photos" / f"{n}.jpg"), image_size)[0] for n in chunk]
        out_boxes, confidence, classes, num = predictor.predict(np.stack(canvases), EVAL_CONFIDENCE,
                                                                max_detections=EVAL_MAX_DETECTIONS)
        for i, name in enumerate(chunk):
            n = int(num[i])
            photo_boxes = to_photo_boxes(out_boxes[i, :n], *geometry[i])
            for j in range(n):
                if classes[i, j] >= 0:
                    detections[int(classes[i, j])].append((name, float(confidence[i, j]), photo_boxes[j]))
        times.append((time.perf_counter() - started) * 1000.0 / len(chunk))
    metrics = detection_metrics(detections, _ground_truth(names, boxes, len(CATEGORIES)), CATEGORIES)
    metrics["photos"] = len(names)
    if timing:
        metrics["ms_per_image"] = round(float(np.median(times)), 1)
        metrics["ms_per_image_p95"] = round(float(np.percentile(times, 95)), 1)
    return metrics


def evaluate_model(model, image_size, data_dir, names, boxes, progress=False) -> dict:
    """Score an in-memory Keras detector (used by training after each epoch)."""
    from ml.detect import Predictor

    return evaluate_predictor(Predictor(model, image_size), image_size, data_dir, names, boxes, progress=progress)


def names_digest(names) -> str:
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]


def add_arguments(parser):
    parser.add_argument("--data", required=True, type=Path,
                        help="directory laid out like the street set: photos/, masks/, labels.txt")
    parser.add_argument("--split", choices=("auto", "val", "all"), default="auto",
                        help="auto (default): the validation split when DIR is the training set, else every photo")
    parser.add_argument("--weights", type=Path, default=None,
                        help="detector .weights.h5 with its .json beside it (default: ml/weights/detector.weights.h5)")
    parser.add_argument("--cache-dir", default="build", help="where derived boxes are cached")
    parser.add_argument("--flip-tta", action=argparse.BooleanOptionalAction, default=None,
                        help="test-time horizontal flip (default: as the model's JSON says)")
    parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N photos (quick checks)")


def run(args) -> dict:
    from ml.detect import ArticleDetector, read_model_config
    from ml.detection_data import load_boxes, split

    detector = ArticleDetector(args.weights, flip_tta=args.flip_tta)
    config = read_model_config(detector.weights_path)
    boxes = load_boxes(args.data, args.cache_dir)
    train_names, val_names = split(boxes)
    split_used = args.split
    if split_used == "auto":
        trained_on = config.get("train_names_sha256")
        split_used = "val" if trained_on and trained_on == names_digest(train_names) else "all"
    names = val_names if split_used == "val" else sorted(boxes)
    if args.limit:
        names = names[: args.limit]
    metrics = evaluate_predictor(detector._model(), detector.image_size, args.data, names, boxes, timing=True)
    return {"model": detector.version, "data": str(args.data), "split": split_used, **metrics,
            "confidence_floor": EVAL_CONFIDENCE,
            # Timings depend on what else runs: the 1-minute load average when the run ended.
            "load_average_1min": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count()}
