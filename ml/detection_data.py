"""Article boxes derived from the street photos' garment masks, and the fixed train/validation split.

The street data set (``photos/*.jpg``, ``masks/*.png``, ``labels.txt``) has per-pixel garment labels
but no boxes. Boxes are made per look category (``ml/categories.json``):

* the mask is mapped to look categories and downscaled (closing at full resolution is slow);
* each category's pixels are closed (a few pixels of dilation then erosion) and split into
  connected components; specks are dropped;
* ``top``, ``bottom`` and ``dress`` give one box per photo: the union of the components that are
  not specks (so the two legs of trousers, or a jacket over a shirt, make one garment);
* ``footwear`` gives one box per shoe: components close to each other are joined (a sandal split by
  its straps), then at most the two largest are kept;
* ``bag`` gives one box per bag: near components are joined, and only the large ones are kept.

``load_boxes`` caches the result as JSON (``build/`` by default) keyed by the data directory, so
training and evaluation do not recompute it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ml.taxonomy import LOOK_CATEGORIES, TAXONOMY_PATH

CATEGORIES = LOOK_CATEGORIES
BOXES_VERSION = 3  # bump when the derivation below changes (invalidates caches)

# Work resolution for masks: the long side is scaled to this many pixels.
WORK_LONG_SIDE = 208
CLOSING_RADIUS = 2  # pixels at work resolution
MIN_AREA_FRACTION = 0.0006  # of the image area: components smaller than this are specks
MIN_SHARE_OF_LARGEST = {"top": 0.12, "bottom": 0.12, "dress": 0.12, "footwear": 0.2, "bag": 0.2}
JOIN_GAP_FRACTION = {"footwear": 0.012, "bag": 0.03}  # of the long side
MAX_BOXES = {"footwear": 2, "bag": 2}


@dataclass(frozen=True)
class PhotoBoxes:
    """Boxes of one photo: normalised (x1, y1, x2, y2) in 0..1, with category indices."""

    name: str
    width: int
    height: int
    boxes: tuple  # tuple of (x1, y1, x2, y2)
    classes: tuple  # tuple of int, index into CATEGORIES


def label_to_category(labels_path: str | os.PathLike, taxonomy_path=TAXONOMY_PATH) -> np.ndarray:
    """Lookup table: mask label index -> category index (0..4), or 255 for labels outside the look."""
    labels = [line.strip() for line in Path(labels_path).read_text().splitlines() if line.strip()]
    taxonomy = json.loads(Path(taxonomy_path).read_text())["look"]
    table = np.full(256, 255, dtype=np.uint8)
    for category_index, name in enumerate(CATEGORIES):
        for label in taxonomy[name]["ccp"]:
            if label not in labels:
                raise ValueError(f"{labels_path}: label {label!r} of categories.json is missing")
            table[labels.index(label)] = category_index
    return table


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(radius):
        grown = out.copy()
        grown[1:, :] |= out[:-1, :]
        grown[:-1, :] |= out[1:, :]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    return ~_dilate(~mask, radius)


def close(mask: np.ndarray, radius: int = CLOSING_RADIUS) -> np.ndarray:
    """Morphological closing with a diamond of the given radius (borders are treated as open)."""
    padded = np.pad(mask, radius, constant_values=False)
    return _erode(_dilate(padded, radius), radius)[radius:-radius, radius:-radius] | mask


def connected_components(mask: np.ndarray) -> list[tuple[int, int, int, int, int]]:
    """8-connected components of a boolean mask as (x1, y1, x2, y2, area), x2/y2 exclusive."""
    seen = np.zeros_like(mask, dtype=bool)
    height, width = mask.shape
    components = []
    ys, xs = np.nonzero(mask)
    for start_y, start_x in zip(ys.tolist(), xs.tolist()):
        if seen[start_y, start_x]:
            continue
        seen[start_y, start_x] = True
        queue = deque([(start_y, start_x)])
        x1 = x2 = start_x
        y1 = y2 = start_y
        area = 0
        while queue:
            y, x = queue.popleft()
            area += 1
            x1, x2, y1, y2 = min(x1, x), max(x2, x), min(y1, y), max(y2, y)
            for ny in (y - 1, y, y + 1):
                if ny < 0 or ny >= height:
                    continue
                for nx in (x - 1, x, x + 1):
                    if 0 <= nx < width and mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        queue.append((ny, nx))
        components.append((x1, y1, x2 + 1, y2 + 1, area))
    return components


def _gap(a, b) -> float:
    dx = max(0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0, max(a[1], b[1]) - min(a[3], b[3]))
    return max(dx, dy)


def _join_near(components, max_gap: float):
    """Greedily merge components whose boxes are at most max_gap apart (area adds up)."""
    items = [list(c) for c in components]
    merged = True
    while merged:
        merged = False
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                if _gap(items[i], items[j]) <= max_gap:
                    a, b = items[i], items[j]
                    items[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]), a[4] + b[4]]
                    del items[j]
                    merged = True
                    break
            if merged:
                break
    return [tuple(c) for c in items]


def boxes_from_mask(mask: np.ndarray, table: np.ndarray):
    """Boxes of one label mask (H x W label indices) as (normalised boxes, category indices)."""
    height, width = mask.shape
    scale = WORK_LONG_SIDE / max(height, width)
    work_w, work_h = max(1, round(width * scale)), max(1, round(height * scale))
    category_map = table[mask]
    small = np.asarray(Image.fromarray(category_map).resize((work_w, work_h), Image.NEAREST))
    min_area = MIN_AREA_FRACTION * work_w * work_h
    boxes, classes = [], []
    for index, name in enumerate(CATEGORIES):
        pixels = small == index
        if pixels.sum() < min_area:
            continue
        components = [c for c in connected_components(close(pixels)) if c[4] >= min_area]
        if not components:
            continue
        largest = max(c[4] for c in components)
        if name in JOIN_GAP_FRACTION:
            components = _join_near(components, JOIN_GAP_FRACTION[name] * max(work_w, work_h))
            largest = max(c[4] for c in components)
            components = [c for c in components if c[4] >= MIN_SHARE_OF_LARGEST[name] * largest]
            components = sorted(components, key=lambda c: -c[4])[: MAX_BOXES[name]]
        else:
            kept = [c for c in components if c[4] >= MIN_SHARE_OF_LARGEST[name] * largest]
            components = [(min(c[0] for c in kept), min(c[1] for c in kept),
                           max(c[2] for c in kept), max(c[3] for c in kept), sum(c[4] for c in kept))]
        for x1, y1, x2, y2, _ in components:
            boxes.append((round(x1 / work_w, 5), round(y1 / work_h, 5), round(x2 / work_w, 5), round(y2 / work_h, 5)))
            classes.append(index)
    return boxes, classes


def photo_names(data_dir: str | os.PathLike) -> list[str]:
    """Stems of the photos that have a mask, sorted."""
    data_dir = Path(data_dir)
    photos = {p.stem for p in (data_dir / "photos").glob("*.jpg")}
    masks = {p.stem for p in (data_dir / "masks").glob("*.png")}
    return sorted(photos & masks)


def split(names, val_fraction: float = 0.15, seed: int = 20261126) -> tuple[list[str], list[str]]:
    """Fixed train/validation split: a seeded permutation of the sorted names. Returns (train, val)."""
    names = sorted(names)
    order = np.random.default_rng(seed).permutation(len(names))
    n_val = int(round(val_fraction * len(names)))
    val = sorted(names[i] for i in order[:n_val])
    train = sorted(names[i] for i in order[n_val:])
    return train, val


def _cache_path(data_dir: Path, cache_dir: Path) -> Path:
    key = hashlib.sha1(f"{data_dir.resolve()}|v{BOXES_VERSION}".encode()).hexdigest()[:12]
    return cache_dir / f"detection_boxes_{key}.json"


def compute_boxes(data_dir, names=None, progress=True) -> dict[str, PhotoBoxes]:
    data_dir = Path(data_dir)
    table = label_to_category(data_dir / "labels.txt")
    names = photo_names(data_dir) if names is None else names
    iterator = names
    if progress:
        from tqdm import tqdm

        iterator = tqdm(names, desc="boxes from masks", unit="photo")
    result = {}
    for name in iterator:
        mask = np.asarray(Image.open(data_dir / "masks" / f"{name}.png"))
        if mask.ndim == 3:
            mask = mask[..., 0]
        boxes, classes = boxes_from_mask(mask, table)
        result[name] = PhotoBoxes(name, mask.shape[1], mask.shape[0], tuple(boxes), tuple(classes))
    return result


def load_boxes(data_dir, cache_dir="build", progress=True) -> dict[str, PhotoBoxes]:
    """Boxes of every photo in data_dir, from the JSON cache when it is there."""
    data_dir = Path(data_dir)
    cache = _cache_path(data_dir, Path(cache_dir))
    if cache.exists():
        raw = json.loads(cache.read_text())
        return {n: PhotoBoxes(n, r["width"], r["height"], tuple(map(tuple, r["boxes"])), tuple(r["classes"]))
                for n, r in raw.items()}
    result = compute_boxes(data_dir, progress=progress)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({n: {"width": b.width, "height": b.height, "boxes": b.boxes, "classes": b.classes}
                               for n, b in result.items()}))
    tmp.replace(cache)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description="Derive article boxes from street masks and print a summary.")
    parser.add_argument("--data", required=True, help="street data directory (photos/, masks/, labels.txt)")
    parser.add_argument("--cache-dir", default="build")
    args = parser.parse_args(argv)
    boxes = load_boxes(args.data, args.cache_dir)
    train, val = split(boxes)
    counts = np.zeros(len(CATEGORIES), dtype=int)
    for b in boxes.values():
        for c in b.classes:
            counts[c] += 1
    print(json.dumps({"photos": len(boxes), "train": len(train), "val": len(val),
                      "boxes_per_category": dict(zip(CATEGORIES, counts.tolist()))}, indent=2))


if __name__ == "__main__":
    main()
