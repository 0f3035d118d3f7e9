#!/usr/bin/env python3
"""Make the committed demo subset from the full data sets.

    python scripts/make_demo_subset.py --data ../shared/data --out demo_data

Reads ``DATA/products/styles.csv`` + ``DATA/products/images/<id>.jpg`` (Kaggle "Fashion Product Images
(Small)") and ``DATA/street/photos`` + ``DATA/street/masks`` (Clothing Co-Parsing), and writes:

- ``OUT/products/styles.csv`` and ``OUT/products/images/<id>.jpg``: about 600 catalogue products, balanced
  over Men / Women (+ some Unisex) and the look categories top / bottom / footwear / bag, every dress of the
  catalogue, and a few products outside every look category (watches, sunglasses, belts...). Within a
  group, article types are taken in turn so that the demo shows variety (not 60 T-shirts).
- ``OUT/looks/<stem>.jpg``: about 40 full-body street photos showing at least three look categories
  (read from the garment masks), resized to at most 600 px on the long side.

Deterministic: same data + same ``--seed`` → byte-identical output. Existing files in ``OUT/products``
and ``OUT/looks`` that are not part of the new selection are removed; ``OUT/README.md`` is left alone.
"""
import argparse
import csv
import io
import random
import shutil
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recommender.taxonomy import LOOK_CATEGORIES, look_category_for, taxonomy  # noqa: E402

# (gender, look category) -> how many products; "dress" takes every dress of the catalogue.
QUOTAS = {
    ("Men", "top"): 70, ("Men", "bottom"): 60, ("Men", "footwear"): 60, ("Men", "bag"): 55,
    ("Women", "top"): 70, ("Women", "bottom"): 60, ("Women", "footwear"): 60, ("Women", "bag"): 55,
    ("Unisex", "top"): 10, ("Unisex", "footwear"): 15, ("Unisex", "bag"): 15,
    # Outside every look category ("" = none): shown in the shop, never in a look.
    ("Men", ""): 12, ("Women", ""): 10, ("Unisex", ""): 8,
}
NON_LOOK_SUB_CATEGORIES = {"Watches", "Eyewear", "Belts", "Headwear", "Jewellery", "Scarves", "Ties"}
LOOK_PHOTOS = 40
LOOK_LONG_SIDE = 600


def take_varied(rows, count, rng):
    """Up to ``count`` rows, article types taken in turn (each type shuffled)."""
    by_type = defaultdict(list)
    for row in rows:
        by_type[row["articleType"]].append(row)
    queues = []
    for article_type in sorted(by_type):
        group = sorted(by_type[article_type], key=lambda row: int(row["id"]))
        rng.shuffle(group)
        queues.append(group)
    rng.shuffle(queues)
    chosen = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop())
    return chosen


def select_products(styles_path, images_dir, rng):
    with open(styles_path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames
        rows = [row for row in reader if (images_dir / f"{row['id']}.jpg").is_file()]
    groups = defaultdict(list)
    for row in rows:
        look = look_category_for(row["subCategory"], row["articleType"])
        if look == "" and row["subCategory"] not in NON_LOOK_SUB_CATEGORIES:
            continue
        groups[(row["gender"], look)].append(row)
    chosen = []
    for key in sorted(QUOTAS):
        chosen += take_varied(groups.get(key, []), QUOTAS[key], rng)
    for key in sorted(groups):
        if key[1] == "dress":
            chosen += groups[key]
    chosen.sort(key=lambda row: int(row["id"]))
    return header, chosen


def look_categories_by_mask_label(labels_path):
    labels = [line.strip() for line in labels_path.read_text(encoding="utf-8").splitlines()]
    by_label = {}
    for look, spec in taxonomy()["look"].items():
        for label in spec["ccp"]:
            by_label[label] = look
    return {index: by_label[label] for index, label in enumerate(labels) if label in by_label}


def select_looks(street_dir, rng, count=LOOK_PHOTOS, min_pixels=400):
    """Photos showing at least three look categories; dresses and bags favoured for a varied demo."""
    import numpy as np
    from PIL import Image

    category_of = look_categories_by_mask_label(street_dir / "labels.txt")
    shown = {}
    for photo in sorted((street_dir / "photos").glob("*.jpg")):
        mask_path = street_dir / "masks" / f"{photo.stem}.png"
        if not mask_path.is_file():
            continue
        values, counts = np.unique(np.asarray(Image.open(mask_path)), return_counts=True)
        looks = {category_of[int(v)] for v, n in zip(values, counts) if int(v) in category_of and n >= min_pixels}
        if len(looks) >= 3:
            shown[photo] = looks
    candidates = sorted(shown)
    rng.shuffle(candidates)
    with_dress = [p for p in candidates if "dress" in shown[p]][: count // 4]
    with_bag = [p for p in candidates if "bag" in shown[p] and p not in with_dress][: count // 3]
    rest = [p for p in candidates if p not in with_dress and p not in with_bag]
    return sorted((with_dress + with_bag + rest)[:count])


def write_look(photo, target):
    from PIL import Image, ImageOps

    with Image.open(photo) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        image.thumbnail((LOOK_LONG_SIDE, LOOK_LONG_SIDE), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85, optimize=True)
    target.write_bytes(buffer.getvalue())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="the full data folder (products/, street/)")
    parser.add_argument("--out", default=ROOT / "demo_data", type=Path)
    parser.add_argument("--seed", default=20261126, type=int)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    products_in = args.data / "products"
    header, rows = select_products(products_in / "styles.csv", products_in / "images", rng)
    looks = select_looks(args.data / "street", rng)

    products_out, images_out, looks_out = args.out / "products", args.out / "products" / "images", args.out / "looks"
    for folder in (images_out, looks_out):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    with open(products_out / "styles.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        shutil.copyfile(products_in / "images" / f"{row['id']}.jpg", images_out / f"{row['id']}.jpg")
    for photo in looks:
        write_look(photo, looks_out / f"{photo.stem}.jpg")

    counts = defaultdict(int)
    for row in rows:
        counts[(row["gender"], look_category_for(row["subCategory"], row["articleType"]) or "other")] += 1
    size = sum(path.stat().st_size for path in args.out.rglob("*") if path.is_file())
    print(f"{len(rows)} products, {len(looks)} look photos, {size / 1e6:.1f} MB in {args.out}")
    for gender in ("Men", "Women", "Unisex", "Boys", "Girls"):
        line = ", ".join(f"{look} {counts[(gender, look)]}" for look in (*LOOK_CATEGORIES, "other") if counts[(gender, look)])
        if line:
            print(f"  {gender}: {line}")


if __name__ == "__main__":
    main()
