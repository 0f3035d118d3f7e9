"""Street garment crops as a second training domain for the embedder (issue 13, item 2).

The garments of the street photos with masks (``ml.evaluation.street_to_shop.garments_of``: one box per
top / bottom / dress, per shoe, per bag, with the fine mask label that covers most of it) of the detector's
*training* split only (``ml.detection_data.split``; the validation split stays unseen, it is what
``python -m ml.evaluate street-to-shop`` measures). Each garment is labelled with the catalogue article
types its fine label accepts (``ml/categories.json`` → ``street_to_catalogue``: a blouse → Tops / Shirts /
Tunics), so in the metric loss it is a positive of each of those article-type proxies and a negative of all
others (a kurta, for a blouse). It has no gender or colour label: it takes no part in those two losses.

A crop is kept with some context around its box (``CONTEXT`` of the box size on each side) at a bounded
resolution, so that a training view can draw its own margin as the widget's detector boxes vary.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONTEXT = 0.25  # context kept around each box, share of the box's width / height per side
MAX_SIDE = 384  # stored crops are downscaled to this longer side
WIDGET_MARGIN = 0.08  # ml.pipeline.CROP_MARGIN: what the widget cuts around a detected box


@dataclass
class StreetCrop:
    image: object  # PIL image: the box plus its context
    box: tuple  # the garment's box inside ``image``, pixels (x1, y1, x2, y2)
    category: str
    fine_label: str
    article_types: tuple  # acceptable catalogue article types
    photo: str = ""  # the street photo's name


def load_street_crops(data_dir, article_types, cache_dir="build", progress=True, split_name="train") -> list[StreetCrop]:
    """The garments of the training split (``split_name="val"``: the validation split) whose fine label maps to at
    least one of ``article_types``."""
    from PIL import Image
    from tqdm import tqdm

    from ml.detection_data import load_boxes, split
    from ml.evaluation.street_to_shop import garments_of, street_to_catalogue

    data_dir = Path(data_dir)
    boxes = load_boxes(data_dir, cache_dir, progress=progress)
    train_names, val_names = split(boxes)
    acceptable = street_to_catalogue()
    known = set(article_types)
    out = []
    garments = garments_of(data_dir, val_names if split_name == "val" else train_names, boxes)
    by_photo = {}
    for g in garments:
        types = tuple(sorted(acceptable.get(g.fine_label, set()) & known))
        if types:
            by_photo.setdefault(g.photo, []).append((g, types))
    for name, items in tqdm(sorted(by_photo.items()), desc="street crops", unit="photo", disable=not progress):
        with Image.open(data_dir / "photos" / f"{name}.jpg") as photo:
            photo = photo.convert("RGB")
        w, h = photo.size
        for g, types in items:
            x1, y1, x2, y2 = g.box[0] * w, g.box[1] * h, g.box[2] * w, g.box[3] * h
            bw, bh = x2 - x1, y2 - y1
            left, top = max(0, int(x1 - CONTEXT * bw)), max(0, int(y1 - CONTEXT * bh))
            right, bottom = min(w, int(np.ceil(x2 + CONTEXT * bw))), min(h, int(np.ceil(y2 + CONTEXT * bh)))
            crop = photo.crop((left, top, max(right, left + 1), max(bottom, top + 1)))
            scale = min(1.0, MAX_SIDE / max(crop.size))
            if scale < 1.0:
                crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))),
                                   Image.BILINEAR)
            box = ((x1 - left) * scale, (y1 - top) * scale, (x2 - left) * scale, (y2 - top) * scale)
            out.append(StreetCrop(crop, box, g.category, g.fine_label, types, name))
    return out


def augment_street_crop(crop: StreetCrop, rng: np.random.Generator, size: int, clean: bool = False):
    """One training view: the box with a random margin (or the widget's own when ``clean``), letterboxed."""
    from PIL import Image

    from ml.product_photos import letterbox, photometric_jitter

    w, h = crop.image.size
    x1, y1, x2, y2 = crop.box
    bw, bh = x2 - x1, y2 - y1
    if clean:
        margins = np.full(4, WIDGET_MARGIN)
    else:  # a detector box is loose or a little tight on any side
        margins = rng.uniform(-0.06, 0.2, size=4)
    left = int(np.clip(x1 - margins[0] * bw, 0, w - 1))
    top = int(np.clip(y1 - margins[1] * bh, 0, h - 1))
    right = int(np.clip(np.ceil(x2 + margins[2] * bw), left + 1, w))
    bottom = int(np.clip(np.ceil(y2 + margins[3] * bh), top + 1, h))
    view = crop.image.crop((left, top, right, bottom))
    if rng.random() < 0.5:
        view = view.transpose(Image.FLIP_LEFT_RIGHT)
    view = letterbox(view, size)
    return view if clean else photometric_jitter(view, rng)
