"""Pseudo-labelled detector boxes for the tag-only street photos: ``python -m ml.pseudo_labels``.

    python -m ml.pseudo_labels --tagged ../shared/data/street_tagged --out build/pseudo_labels.json \
        [--weights ml/weights/detector.weights.h5] [--confirm 0.5] [--keep 0.3]

``street_tagged/`` holds photos (``photos/*.jpg``) with image-level tags only (``tags.csv``: which
garments a photo shows, mask-label names of ``street/labels.txt``). The tags are mapped to look
categories (``ml/categories.json``, ``ccp`` lists). The current detector runs on every photo; a
category is *confirmed* when the photo's tags name it and its best box scores at least
``--confirm``; then every box of that category scoring at least ``--keep`` is kept (the second
shoe is often less confident). Boxes of categories the tags do not name are dropped. A photo is
kept only when every tagged category is confirmed, so a missing box does not become a negative.

Output JSON: ``{"photos": {stem: {"width", "height", "boxes": [[x1,y1,x2,y2] normalised],
"classes": [...]}}, "summary": {...}}`` — read by ``ml.train_detector --pseudo-labels``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

from ml.detection_data import CATEGORIES, TAXONOMY_PATH


def tag_categories(tags, taxonomy_path=TAXONOMY_PATH) -> set[int]:
    """Look category indices named by a photo's tags (mask-label names)."""
    look = json.loads(Path(taxonomy_path).read_text())["look"]
    label_to_index = {label: i for i, name in enumerate(CATEGORIES) for label in look[name]["ccp"]}
    return {label_to_index[t] for t in tags if t in label_to_index}


def read_tags(tagged_dir: Path) -> dict[str, list[str]]:
    with open(tagged_dir / "tags.csv", newline="") as fh:
        return {Path(row["photo"]).stem: [t for t in row["tags"].split(";") if t] for row in csv.DictReader(fh)}


def pseudo_label(tagged_dir: Path, weights=None, confirm: float = 0.5, keep: float = 0.3, batch: int = 8,
                 progress: bool = True) -> dict:
    from PIL import Image
    from tqdm import tqdm

    from ml.detect import ArticleDetector

    detector = ArticleDetector(weights)
    tags = read_tags(tagged_dir)
    names = sorted(n for n in tags if (tagged_dir / "photos" / f"{n}.jpg").exists())
    photos, dropped, boxes_per_class = {}, {"no_look_tag": 0, "unconfirmed": 0}, [0] * len(CATEGORIES)
    chunks = [names[i:i + batch] for i in range(0, len(names), batch)]
    for chunk in tqdm(chunks, desc="pseudo-labelling", unit="batch", disable=not progress):
        images = []
        for name in chunk:
            with Image.open(tagged_dir / "photos" / f"{name}.jpg") as photo:
                images.append(photo.convert("RGB"))
        found = detector.detect_batch(images, min_confidence=keep)
        for name, image, detections in zip(chunk, images, found):
            wanted = tag_categories(tags[name])
            if not wanted:
                dropped["no_look_tag"] += 1
                continue
            best = {}
            for d in detections:
                c = CATEGORIES.index(d.category)
                best[c] = max(best.get(c, 0.0), d.confidence)
            if any(best.get(c, 0.0) < confirm for c in wanted):
                dropped["unconfirmed"] += 1
                continue
            kept = [d for d in detections if CATEGORIES.index(d.category) in wanted]
            photos[name] = {"width": image.width, "height": image.height,
                            "boxes": [[round(v, 5) for v in d.box] for d in kept],
                            "classes": [CATEGORIES.index(d.category) for d in kept]}
            for d in kept:
                boxes_per_class[CATEGORIES.index(d.category)] += 1
    summary = {"tagged_photos": len(names), "kept_photos": len(photos), "dropped": dropped,
               "boxes_per_category": dict(zip(CATEGORIES, boxes_per_class)), "detector": detector.version,
               "confirm": confirm, "keep": keep}
    return {"photos": photos, "summary": summary}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ml.pseudo_labels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tagged", required=True, type=Path, help="street_tagged dir (photos/, tags.csv)")
    parser.add_argument("--out", required=True, type=Path, help="JSON to write")
    parser.add_argument("--weights", type=Path, default=None, help="detector weights (default: the committed ones)")
    parser.add_argument("--confirm", type=float, default=0.5, help="a tagged category needs a box this confident")
    parser.add_argument("--keep", type=float, default=0.3, help="boxes of confirmed categories kept from this score")
    args = parser.parse_args(argv)
    if not (args.tagged / "tags.csv").exists():
        parser.error(f"{args.tagged}: no tags.csv")
    result = pseudo_label(args.tagged, args.weights, args.confirm, args.keep)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, args.out)
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
