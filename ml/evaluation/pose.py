"""``python -m ml.evaluate pose``: precision and recall of the full-shot gate.

Positives are full-body street photos (every image in ``--street``); negatives are catalogue
close-ups of footwear, bags, watches and topwear (``--products-styles`` + ``--products-images``).
With ``--limit N`` the first N photos (sorted by name / id) of each side are used, so the figure is
reproducible.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

from tqdm import tqdm

#: catalogue ``subCategory`` values that are close-ups (never a whole outfit)
NEGATIVE_SUBCATEGORIES = ("Shoes", "Bags", "Watches", "Topwear")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def add_arguments(parser):
    parser.add_argument("--street", required=True, type=Path, nargs="+",
                        help="directories of full-body street photos (positives)")
    parser.add_argument("--products-styles", required=True, type=Path,
                        help="catalogue styles.csv (id, subCategory, ...)")
    parser.add_argument("--products-images", required=True, type=Path,
                        help="directory of catalogue images named <id>.jpg")
    parser.add_argument("--limit", type=int, default=None,
                        help="use at most N photos per side (and per negative subCategory: N/4)")
    parser.add_argument("--visibility", type=float, default=None,
                        help="override every landmark visibility threshold (default: the gate's)")


def _street_photos(directories, limit):
    photos = []
    for directory in directories:
        if not directory.is_dir():
            raise SystemExit(f"--street: not a directory: {directory}")
        found = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        photos.extend(found[:limit] if limit else found)
    return photos


def _negatives(styles: Path, images: Path, limit):
    if not styles.is_file():
        raise SystemExit(f"--products-styles: no such file: {styles}")
    per_kind = {kind: [] for kind in NEGATIVE_SUBCATEGORIES}
    with styles.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            kind = row.get("subCategory")
            if kind in per_kind:
                path = images / f"{row['id']}.jpg"
                if path.is_file():
                    per_kind[kind].append((int(row["id"]), kind, path))
    cap = max(1, limit // len(per_kind)) if limit else None
    chosen = []
    for kind, rows in per_kind.items():
        rows.sort()
        chosen.extend(rows[:cap] if cap else rows)
    return [(kind, path) for _, kind, path in chosen]


def run(args) -> dict:
    from ml.images import ImageError, load_image
    from ml.pose import PoseGate

    kwargs = {}
    if args.visibility is not None:
        kwargs = {k: args.visibility for k in (
            "nose_visibility", "shoulder_visibility", "hip_visibility", "ankle_visibility")}
    gate = PoseGate(**kwargs)
    # The same gate without its quick test: what the quick test costs (full shots it rules out) and saves.
    reference = PoseGate(**kwargs, quick_reject=False)
    positives = _street_photos(args.street, args.limit)
    negatives = _negatives(args.products_styles, args.products_images, args.limit)

    tp = fn = fp = tn = 0
    unreadable = 0
    false_positive_by_kind = {kind: 0 for kind in NEGATIVE_SUBCATEGORIES}
    negatives_by_kind = {kind: 0 for kind in NEGATIVE_SUBCATEGORIES}
    missed = []
    elapsed = 0.0
    quick = {"full_shots_lost": 0, "street_landmarks_skipped": 0, "catalogue_landmarks_skipped": 0,
             "catalogue_person_seen": 0}
    full_bodies = []  # (hips, radius) of every full shot, by the gate without its quick test
    items = [(True, None, p) for p in positives] + [(False, k, p) for k, p in negatives]
    for is_positive, kind, path in tqdm(items, desc="pose gate", unit="photo"):
        try:
            image = load_image(path)
        except ImageError:
            unreadable += 1
            continue
        start = time.perf_counter()
        result = gate.check(image)
        elapsed += time.perf_counter() - start
        full = result.is_full_shot
        skipped = result.person_seen and not result.keypoints
        slow = reference.check(image)
        quick["full_shots_lost"] += slow.is_full_shot and not full
        if slow.is_full_shot and slow.body:
            full_bodies.append(slow.body)
        if is_positive:
            quick["street_landmarks_skipped"] += skipped
        else:
            quick["catalogue_person_seen"] += result.person_seen
            quick["catalogue_landmarks_skipped"] += skipped
        if is_positive:
            tp += full
            fn += not full
            if not full and len(missed) < 20:
                missed.append(path.name)
        else:
            negatives_by_kind[kind] += 1
            fp += full
            tn += not full
            false_positive_by_kind[kind] += full
    checked = tp + fn + fp + tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "gate": gate.version,
        "positives": tp + fn,
        "negatives": fp + tn,
        "negatives_by_subcategory": negatives_by_kind,
        "true_positives": tp,
        "false_negatives": fn,
        "false_positives": fp,
        "false_positives_by_subcategory": false_positive_by_kind,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        "ms_per_photo": round(1000 * elapsed / checked, 1) if checked else None,
        "unreadable": unreadable,
        "quick_test": {**quick, "full_shots": len(full_bodies), "full_shot_body_max": {
            "feet": round(max((h + r for h, r in full_bodies), default=0.0), 3),
            "radius": round(max((r for _, r in full_bodies), default=0.0), 3),
            "hips": round(max((h for h, _ in full_bodies), default=0.0), 3)},
            "thresholds": {"feet": gate.max_feet_height, "radius": gate.max_body_radius, "hips": gate.max_hip_height}},
        "missed_positives_sample": missed,
    }
