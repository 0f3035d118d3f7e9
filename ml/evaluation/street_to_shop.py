"""``python -m ml.evaluate street-to-shop``: what a shopper sees for the garments of a street photo.

    python -m ml.evaluate street-to-shop --data ../shared/data/street \
        --catalogue-styles ../shared/data/products/styles.csv --catalogue-images ../shared/data/products/images \
        [--mode look|crop|variants] [--split val|all] [--k 10] [--weights DETECTOR] [--embedder-weights W] [--json OUT]

Street photos with garment masks (``photos/``, ``masks/``, ``labels.txt``; by default the detector's
validation split, ``ml.detection_data.split``). The *garments* of a photo are the boxes
``ml.detection_data`` derives from its masks (one top/bottom/dress per photo, one box per shoe, up to
two bags); each gets the fine mask label that covers most of its category's pixels inside its box
(``coat``, ``jeans``, ``heels`` …). A result is of an *acceptable type* when its catalogue
``articleType`` is listed for that fine label in ``ml/categories.json`` → ``street_to_catalogue``.

The catalogue: every product of the styles CSV with an image and a look category, indexed as the shop
indexes a catalogue photo of one article — the whole image's embedding, its look category, its gender
(embeddings cached in ``--cache-dir``). Queries mirror the plugin (pure ml, no Django):

- ``look`` (the "Buy Me That Look" widget of a product whose photo this is): ``ml.pipeline.analyse``
  on the whole photo (pose gate: no rows unless it is a full shot; gender predicted, as the street
  photo has no product gender unless ``--gender`` gives one; detect; embed). Rows as
  ``recommender.looks.rows_for`` makes them: detections at or above their category's floor (``shop_floors``:
  ``--article-floors``, default the detector's) grouped by category, overlaps (IoU ≥ 0.45)
  suppressed, the most confident box is the row's article. Each row's k nearest catalogue products of
  the row's category and a compatible gender (``GENDER_POLICY`` below, the recommender's default). A
  garment *gets a row* when a row of its category exists; ``matched`` also needs one of the row's boxes
  to overlap the garment (IoU ≥ 0.3). ``type_precision@k``: over garments with a row, the share of the
  row's k products of an acceptable type.
- ``crop`` (search by photo with a visitor's close-up of one garment): the garment's box with the
  pipeline's 8 % margin is cut out (upscaled to a shorter side of 64 px when smaller) and searched as
  ``recommender.photo_search.search_by_photo`` does: detect whatever the pose gate says; no article →
  the whole photo is one article of the category its 10 nearest products vote for (``category_vote``);
  articles found in a photo that is not a full shot → that vote adds its category's row when no box gave
  one (``vote_row``). ``answered``: a row of the garment's category is among the rows.
- ``variants`` (diagnosis of the embedder, no detector): each garment's crop embedded in several framings
  (``VARIANTS``) and searched within its true category, no gender filter: which article types come back.

Everything is printed (and written to ``--json``) per look category and overall.
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.evaluation.retrieval import KIND_CANDIDATES  # the candidates the colour and kind weights re-order

#: recommender.conf DEFAULTS["GENDER_POLICY"] (kept in step by hand: ml does not import Django).
GENDER_POLICY = {
    "Men": ("Men", "Unisex"),
    "Women": ("Women", "Unisex"),
    "Boys": ("Boys",),
    "Girls": ("Girls",),
    "Unisex": ("Unisex", "Men", "Women"),
}
KIND_WEIGHT = 0.2  # recommender.conf DEFAULTS["KIND_WEIGHT"] (--kind-weight)
MIN_ARTICLE_CONFIDENCE = 0.25  # recommender.conf DEFAULTS["MIN_ARTICLE_CONFIDENCE"] (ARTICLE_FLOORS: shop_floors)
ROW_OVERLAP_IOU = 0.45  # recommender.looks.rows_for → ml.boxes.suppress_overlaps default
MATCH_IOU = 0.3
MIN_CROP_SIDE = 64  # crop mode: smaller garment crops are upscaled (ml.images.load_image refuses < 32 px)
#: look mode: confidence floors at which each category's rows are counted again (``floor_sweep`` of the JSON)
FLOOR_SWEEP = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
VARIANTS = ("box", "box_masked", "mask_tight_masked", "square_context", "box_grey_letterbox")


@dataclass(frozen=True)
class Garment:
    photo: str
    category: str
    fine_label: str
    box: tuple  # normalised xyxy


def _iou(a, b) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def street_to_catalogue(taxonomy_path=None) -> dict[str, set]:
    from ml.detection_data import TAXONOMY_PATH

    data = json.loads(Path(taxonomy_path or TAXONOMY_PATH).read_text())
    return {label: set(types) for label, types in data["street_to_catalogue"].items() if label != "about"}


def read_labels(data_dir: Path) -> list[str]:
    return [line.strip() for line in (data_dir / "labels.txt").read_text().splitlines() if line.strip()]


def read_mask(data_dir: Path, name: str) -> np.ndarray:
    from PIL import Image

    mask = np.asarray(Image.open(data_dir / "masks" / f"{name}.png"))
    return mask[..., 0] if mask.ndim == 3 else mask


def garments_of(data_dir: Path, names, boxes) -> list[Garment]:
    """The garments (mask boxes) of the photos with their dominant fine label."""
    from ml.detection_data import CATEGORIES, TAXONOMY_PATH

    labels = read_labels(data_dir)
    look = json.loads(Path(TAXONOMY_PATH).read_text())["look"]
    label_ids = {c: [labels.index(lab) for lab in look[c]["ccp"] if lab in labels] for c in CATEGORIES}
    out = []
    for name in names:
        entry = boxes[name]
        mask = read_mask(data_dir, name)
        h, w = mask.shape
        for box, cls in zip(entry.boxes, entry.classes):
            category = CATEGORIES[cls]
            x1, y1, x2, y2 = int(box[0] * w), int(box[1] * h), int(np.ceil(box[2] * w)), int(np.ceil(box[3] * h))
            inside = mask[y1:y2, x1:x2]
            counts = {i: int((inside == i).sum()) for i in label_ids[category]}
            fine = labels[max(counts, key=counts.get)]
            out.append(Garment(name, category, fine, tuple(float(v) for v in box)))
    return out


def shop_floors(spec="default") -> dict:
    """Per-category confidence floors as the recommender applies them (``BUY_THE_LOOK["ARTICLE_FLOORS"]`` over
    ``MIN_ARTICLE_CONFIDENCE``): "default" = the detector's ``ml.detect.ARTICLE_FLOORS``, "none" = 0.25 for
    every category, or "bag=0.15,footwear=0.2"."""
    from ml.detect import ARTICLE_FLOORS, CATEGORIES

    if spec == "default":
        chosen = dict(ARTICLE_FLOORS)
    elif spec == "none":
        chosen = {}
    else:
        chosen = {}
        for item in spec.split(","):
            category, _, value = item.partition("=")
            if category.strip() not in CATEGORIES:
                raise SystemExit(f"--article-floors: unknown category {category.strip()!r} in {spec!r}")
            chosen[category.strip()] = float(value)
    return {c: float(chosen.get(c, MIN_ARTICLE_CONFIDENCE)) for c in CATEGORIES}


def rows_for(articles, categories, floor=MIN_ARTICLE_CONFIDENCE):
    """``recommender.looks.rows_for`` for one image: {category: [articles, best first]} after suppression.
    ``floor``: one confidence for every category, or {category: floor} (``shop_floors``)."""
    rows = {}
    for article in sorted(articles, key=lambda a: -a.confidence):
        least = floor.get(article.category, MIN_ARTICLE_CONFIDENCE) if isinstance(floor, dict) else floor
        if article.category not in categories or article.confidence < least:
            continue
        kept = rows.setdefault(article.category, [])
        if all(_iou(article.box, k.box) < ROW_OVERLAP_IOU for k in kept):
            kept.append(article)
    return rows


class Catalogue:
    """The shop's inventory vectors: whole-image embeddings with look category, gender, article type."""

    def __init__(self, styles, images, embedder, cache_dir, batch_size=32):
        from ml.evaluation.retrieval import _embed_products, look_category_of
        from ml.product_photos import read_styles

        products = read_styles(styles, images)
        category = look_category_of(products)
        keep = category != ""
        self.products = [p for p, k in zip(products, keep) if k]
        self.category = category[keep]
        self.gender = np.array([p.gender for p in self.products])
        self.article_type = np.array([p.article_type for p in self.products])
        self.vectors, self.images_per_second = _embed_products(embedder, self.products, "none", batch_size,
                                                               "catalogue", cache_dir)
        self.kinds, self.kind_weight, self.candidates = None, 0.0, KIND_CANDIDATES

    def use_kinds(self, head, weight, candidates=KIND_CANDIDATES):
        """Re-rank as the look query does with ``KIND_WEIGHT``: the products' kind descriptors read from their own
        vectors by ``head`` (``ml.kind_head``), compared with a query's kind when it has one."""
        self.kinds, self.kind_weight = head.descriptors(self.vectors), float(weight)
        self.candidates = int(candidates)

    def nearest(self, vector, k, category=None, gender=None, kind=None) -> np.ndarray:
        """Indices of the k nearest products (cosine) of ``category`` (None: any) and a compatible gender; with a
        ``kind`` descriptor (and ``use_kinds``), the ``candidates`` (``KIND_CANDIDATES``) nearest re-ordered by distance +
        weight × (1 − kind similarity)."""
        allowed = np.ones(len(self.products), bool)
        if category:
            allowed &= self.category == category
        if gender:
            allowed &= np.isin(self.gender, GENDER_POLICY.get(gender, (gender,)))
        sims = np.where(allowed, self.vectors @ np.asarray(vector, np.float32), -np.inf)
        if kind is not None and self.kinds is not None and self.kind_weight > 0:
            pool = np.argsort(-sims, kind="stable")[:max(k, self.candidates)]
            pool = pool[np.isfinite(sims[pool])]
            score = (1 - sims[pool]) + self.kind_weight * (1 - self.kinds[pool] @ np.asarray(kind, np.float32))
            return pool[np.argsort(score, kind="stable")[:k]]
        order = np.argsort(-sims, kind="stable")[:k]
        return order[np.isfinite(sims[order])]


CATEGORY_VOTE_NEIGHBOURS = 10  # recommender.photo_search.CATEGORY_VOTE_NEIGHBOURS


def category_vote(catalogue, vector, gender, neighbours=CATEGORY_VOTE_NEIGHBOURS):
    """``recommender.queries.category_vote``: the look category most common among the nearest products of any
    category (ties: the one with the nearer product), None for an empty catalogue."""
    hits = catalogue.nearest(vector, neighbours, None, gender)
    if len(hits) == 0:
        return None
    counts, first = {}, {}
    for rank, i in enumerate(hits):
        category = str(catalogue.category[i])
        counts[category] = counts.get(category, 0) + 1
        first.setdefault(category, rank)
    return min(counts, key=lambda c: (-counts[c], first[c]))


def whole_photo_category(head, vector, embedder_version, vote):
    """``recommender.photo_search.predicted_category``: the category head of the embedder when there is one for
    its version (``ml.category_head``), else ``vote`` (the nearest catalogue products' ``category_vote``)."""
    return (head.category_of(vector, embedder_version) if head is not None else None) or vote


def _type_share(catalogue, hits, acceptable) -> float:
    if len(hits) == 0:
        return 0.0
    return float(np.mean([catalogue.article_type[i] in acceptable for i in hits]))


def _summarise(records, categories, k):
    """Per look category and overall means of the per-garment records."""
    def block(rs):
        out = {"garments": len(rs)}
        for key in ("gets_row", "matched", "answered", "fallback_whole_photo", "vote_row", "vote_right"):
            values = [r[key] for r in rs if key in r]
            if values:
                out[key] = round(float(np.mean(values)), 4)
        prec = [r["type_share"] for r in rs if r.get("type_share") is not None]
        out[f"type_precision@{k}"] = round(float(np.mean(prec)), 4) if prec else None
        out["scored_rows"] = len(prec)
        types = Counter(t for r in rs for t in r.get("types", []))
        total = sum(types.values())
        out["result_types"] = {t: round(n / total, 3) for t, n in types.most_common(8)} if total else {}
        return out

    result = {"all": block(records)}
    for c in categories:
        result[c] = block([r for r in records if r["category"] == c])
    fine = Counter(r["fine_label"] for r in records)
    result["by_fine_label"] = {
        label: {"garments": n, f"type_precision@{k}": (
            round(float(np.mean(v)), 4) if (v := [r["type_share"] for r in records
                                                  if r["fine_label"] == label and r.get("type_share") is not None])
            else None)}
        for label, n in fine.most_common()
    }
    return result


# --------------------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------------------
def run_look(parts, catalogue, data_dir, garments, acceptable, k, gender, progress=True, floors=None):
    from tqdm import tqdm

    from ml.detection_data import CATEGORIES
    from ml.pipeline import analyse

    by_photo = {}
    for g in garments:
        by_photo.setdefault(g.photo, []).append(g)
    # rows_without_garment: rows of a category the photo's masks do not show (a dress row for a top and a skirt)
    records, photos = [], {"full_shots": 0, "photos": len(by_photo), "rows": 0, "rows_by_category": Counter(),
                           "rows_without_garment": Counter()}
    # Detections are kept down to the sweep's lowest floor; the rows counted everywhere else use the shop's floor.
    floors = floors if floors is not None else shop_floors()
    lowest = min(FLOOR_SWEEP + tuple(floors.values()))
    sweep_photos = []
    for name, items in tqdm(sorted(by_photo.items()), desc="look", unit="photo", disable=not progress):
        analysis = analyse(data_dir / "photos" / f"{name}.jpg", gender=gender, parts=parts, min_confidence=lowest)
        photos["full_shots"] += int(analysis.is_full_shot)
        rows = rows_for(analysis.articles, CATEGORIES, floors)
        low_rows = rows_for(analysis.articles, CATEGORIES, floor=lowest)
        worn = {g.category for g in items}
        sweep_photos.append({"worn": sorted(worn),
                             "best": {c: float(arts[0].confidence) for c, arts in low_rows.items()}})
        photos["rows"] += len(rows)
        photos["rows_by_category"].update(list(rows))
        photos["rows_without_garment"].update(c for c in rows if c not in worn)
        hits = {c: catalogue.nearest(arts[0].embedding, k, c, analysis.gender, arts[0].kind) for c, arts in rows.items()}
        for g in items:
            row = rows.get(g.category)
            record = {"photo": name, "category": g.category, "fine_label": g.fine_label,
                      "gets_row": row is not None,
                      "matched": bool(row) and any(_iou(a.box, g.box) >= MATCH_IOU for a in row),
                      "gender": analysis.gender}
            if row is not None:
                record["type_share"] = _type_share(catalogue, hits[g.category], acceptable.get(g.fine_label, set()))
                record["types"] = [str(catalogue.article_type[i]) for i in hits[g.category]]
            low = low_rows.get(g.category)
            if low is not None:  # the best box of its category, whatever its confidence (the sweep's row)
                record["best_confidence"] = float(low[0].confidence)
                low_hits = hits.get(g.category)
                if low_hits is None:
                    low_hits = catalogue.nearest(low[0].embedding, k, g.category, analysis.gender, low[0].kind)
                record["low_floor_type_share"] = _type_share(catalogue, low_hits,
                                                             acceptable.get(g.fine_label, set()))
            records.append(record)
    photos["rows_by_category"] = dict(photos["rows_by_category"])
    photos["rows_without_garment"] = dict(photos["rows_without_garment"])
    photos["floor_sweep"] = floor_sweep(records, sweep_photos, CATEGORIES)
    return records, photos


def floor_sweep(records, sweep_photos, categories, floors=FLOOR_SWEEP):
    """Per category and confidence floor: the share of its worn garments that would get a row, the rows of it on
    photos that do not show it, and the acceptable-type share of the rows' 10 (each row is its best box)."""
    out = {}
    for category in categories:
        garments = [r for r in records if r["category"] == category]
        if not garments:
            continue
        out[category] = []
        for floor in floors:
            rowed = [r for r in garments if r.get("best_confidence", -1.0) >= floor]
            out[category].append({
                "floor": floor,
                "garments_with_row": round(len(rowed) / len(garments), 4),
                "rows_without_garment": sum(p["best"].get(category, -1.0) >= floor and category not in p["worn"]
                                            for p in sweep_photos),
                "type_precision": round(float(np.mean([r["low_floor_type_share"] for r in rowed])), 4) if rowed else None,
            })
    return out


def run_crop(parts, catalogue, data_dir, garments, acceptable, k, gender, progress=True, head=None, floors=None):
    from PIL import Image
    from tqdm import tqdm

    from ml.detection_data import CATEGORIES
    from ml.pipeline import analyse, crop_with_margin

    floors = floors if floors is not None else shop_floors()

    records = []
    photo_cache = {}
    for g in tqdm(garments, desc="crop", unit="garment", disable=not progress):
        if g.photo not in photo_cache:
            photo_cache.clear()
            with Image.open(data_dir / "photos" / f"{g.photo}.jpg") as photo:
                photo_cache[g.photo] = photo.convert("RGB")
        crop = crop_with_margin(photo_cache[g.photo], g.box)
        if min(crop.size) < MIN_CROP_SIDE:  # a visitor's close-up is a real photo, not a 24-pixel cut-out
            scale = MIN_CROP_SIDE / min(crop.size)
            crop = crop.resize((round(crop.width * scale), round(crop.height * scale)), Image.BICUBIC)
        analysis = analyse(crop, gender=gender, parts=parts, detect=True, min_confidence=min(floors.values()))
        rows = rows_for(analysis.articles, CATEGORIES, floors)
        knn_vote = category_vote(catalogue, analysis.image_embedding, analysis.gender)
        record = {"photo": g.photo, "category": g.category, "fine_label": g.fine_label,
                  "answered": g.category in rows, "fallback_whole_photo": not rows, "vote_row": False,
                  "row_categories": sorted(rows), "gender": analysis.gender, "full_shot": analysis.is_full_shot,
                  # diagnosis: what the whole photo's category is said to be, whether or not it is used
                  "whole_photo_vote": whole_photo_category(head, analysis.image_embedding, parts.embedder.version,
                                                           knn_vote),
                  "knn_vote": knn_vote}
        voted = record["whole_photo_vote"]
        record["vote_right"] = voted == g.category
        # the cost of the extra row: a close-up whose whole photo is called something it is not gets a wrong row
        record["wrong_extra_row"] = bool(rows and not analysis.is_full_shot and voted and voted not in rows
                                         and voted != g.category)
        if g.category in rows:
            article = rows[g.category][0]
            hits = catalogue.nearest(article.embedding, k, g.category, analysis.gender, article.kind)
        elif rows and not analysis.is_full_shot and voted == g.category:
            # as search_by_photo: a close-up's whole-photo vote adds its category's row when no box gave one
            record["answered"] = True
            record["vote_row"] = True
            hits = catalogue.nearest(analysis.image_embedding, k, voted, analysis.gender, analysis.image_kind)
        elif not rows:
            nearest = catalogue.nearest(analysis.image_embedding, k, None, analysis.gender)
            record["fallback_category_share"] = float(np.mean([catalogue.category[i] == g.category for i in nearest]))
            # as search_by_photo: the whole photo's row takes the category its nearest products vote for
            record["fallback_category"] = voted
            record["answered"] = voted == g.category
            hits = catalogue.nearest(analysis.image_embedding, k, voted, analysis.gender,
                                     analysis.image_kind) if voted else nearest
        else:
            hits = None
        if hits is not None:
            record["type_share"] = _type_share(catalogue, hits, acceptable.get(g.fine_label, set()))
            record["types"] = [str(catalogue.article_type[i]) for i in hits]
        records.append(record)
    return records


def _vote_summary(records, categories):
    """Per garment category: how often the whole photo's category (used) and the nearest products' vote are right."""
    out = {}
    for category in ("all", *categories):
        rs = [r for r in records if category in ("all", r["category"])]
        if rs:
            out[category] = {"garments": len(rs),
                             "used": round(float(np.mean([r["whole_photo_vote"] == r["category"] for r in rs])), 4),
                             "knn_vote": round(float(np.mean([r["knn_vote"] == r["category"] for r in rs])), 4),
                             "wrong_extra_row": round(float(np.mean([r["wrong_extra_row"] for r in rs])), 4)}
    return out


def crop_variant(photo, mask, category_ids, box, how):
    """One framing of a garment crop (PIL) for the ``variants`` mode."""
    from PIL import Image

    from ml.pipeline import crop_with_margin

    w, h = photo.size
    garment = np.isin(mask, category_ids)
    if how in ("box", "box_grey_letterbox"):
        crop = crop_with_margin(photo, box)
        if how == "box_grey_letterbox":  # pad to a square on grey before the embedder pads on white
            side = max(crop.size)
            canvas = Image.new("RGB", (side, side), (114, 114, 114))
            canvas.paste(crop, ((side - crop.width) // 2, (side - crop.height) // 2))
            crop = canvas
        return crop
    if how == "square_context":  # a square around the box: the letterbox is filled with the scene
        cx, cy = (box[0] + box[2]) / 2 * w, (box[1] + box[3]) / 2 * h
        side = max((box[2] - box[0]) * w, (box[3] - box[1]) * h) * 1.16
        return photo.crop((int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2)))
    # masked: everything that is not this category's garment pixels becomes white (a catalogue cut-out)
    white = np.asarray(photo).copy()
    white[~garment] = 255
    white = Image.fromarray(white)
    if how == "box_masked":
        return crop_with_margin(white, box)
    if how == "mask_tight_masked":
        x1, y1, x2, y2 = int(box[0] * w), int(box[1] * h), int(np.ceil(box[2] * w)), int(np.ceil(box[3] * h))
        ys, xs = np.nonzero(garment[y1:y2, x1:x2])
        if len(xs):
            return white.crop((x1 + xs.min(), y1 + ys.min(), x1 + xs.max() + 1, y1 + ys.max() + 1))
        return white.crop((x1, y1, x2, y2))
    raise ValueError(how)


def run_variants(parts, catalogue, data_dir, garments, acceptable, k, progress=True):
    from PIL import Image
    from tqdm import tqdm

    from ml.detection_data import CATEGORIES, TAXONOMY_PATH

    labels = read_labels(data_dir)
    look = json.loads(Path(TAXONOMY_PATH).read_text())["look"]
    ids = {c: [labels.index(lab) for lab in look[c]["ccp"] if lab in labels] for c in CATEGORIES}
    by_photo = {}
    for g in garments:
        by_photo.setdefault(g.photo, []).append(g)
    records = {v: [] for v in VARIANTS}
    for name, items in tqdm(sorted(by_photo.items()), desc="variants", unit="photo", disable=not progress):
        with Image.open(data_dir / "photos" / f"{name}.jpg") as photo:
            photo = photo.convert("RGB")
        mask = read_mask(data_dir, name)
        if mask.shape != (photo.height, photo.width):
            mask = np.asarray(Image.fromarray(mask).resize(photo.size, Image.NEAREST))
        crops = [(g, v, crop_variant(photo, mask, ids[g.category], g.box, v)) for g in items for v in VARIANTS]
        vectors = parts.embedder.embed([c for _, _, c in crops])
        for (g, v, crop), vector in zip(crops, vectors):
            hits = catalogue.nearest(vector, k, g.category, None)
            records[v].append({"photo": name, "category": g.category, "fine_label": g.fine_label,
                               "aspect_w_over_h": round(crop.width / max(crop.height, 1), 3),
                               "type_share": _type_share(catalogue, hits, acceptable.get(g.fine_label, set())),
                               "types": [str(catalogue.article_type[i]) for i in hits]})
    return records


def by_aspect(records, quantiles=(0.25, 0.5, 0.75)):
    """Kurta share and type precision of the results per quartile of the crop's width / height."""
    aspect = np.array([r["aspect_w_over_h"] for r in records])
    if not len(aspect):
        return []
    edges = np.quantile(aspect, (0.0, *quantiles, 1.0))
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        chosen = [r for r, a in zip(records, aspect) if lo <= a <= hi]
        kurtas = [t in ("Kurtas", "Kurtis") for r in chosen for t in r["types"]]
        out.append({"w_over_h": [round(float(lo), 2), round(float(hi), 2)], "garments": len(chosen),
                    "kurta_share": round(float(np.mean(kurtas)), 4),
                    "type_precision": round(float(np.mean([r["type_share"] for r in chosen])), 4)})
    return out


def catalogue_types(catalogue, category):
    """Article-type shares of a look category's catalogue products, per gender filter of the widget."""
    out = {}
    for gender in ("Women", "Men", None):
        chosen = catalogue.category == category
        if gender:
            chosen &= np.isin(catalogue.gender, GENDER_POLICY[gender])
        counts = Counter(catalogue.article_type[chosen].tolist())
        total = sum(counts.values())
        out[gender or "any"] = {"products": total, **{t: round(n / total, 3) for t, n in counts.most_common(10)}}
    return out


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def add_arguments(parser):
    parser.add_argument("--data", required=True, type=Path, help="street set: photos/, masks/, labels.txt")
    parser.add_argument("--catalogue-styles", required=True, type=Path, help="styles.csv of the shop's catalogue")
    parser.add_argument("--catalogue-images", required=True, type=Path, help="directory of <id>.jpg")
    parser.add_argument("--mode", choices=("look", "crop", "variants"), default="look")
    parser.add_argument("--split", choices=("val", "all"), default="val",
                        help="val (default): the detector's validation split; all: every photo")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--head-checks", choices=("default", "none"), default="default",
                        help="the category head's second opinion on dress boxes (ml.detect.HEAD_CHECKS), as the "
                             "shop: default, or none (every box above its floor kept)")
    parser.add_argument("--kind-weight", type=float, default=KIND_WEIGHT,
                        help="re-rank each row's --candidates nearest by distance + this x (1 - kind similarity) as "
                             "the shop does (KIND_WEIGHT; 0 = visual only, as before the kind head)")
    parser.add_argument("--candidates", type=int, default=KIND_CANDIDATES,
                        help="visual candidates the kind weight re-orders (the shop's COLOUR_CANDIDATES)")
    parser.add_argument("--article-floors", default="default",
                        help="per-category confidence floors of the rows: default (the detector's, as the shop), "
                             "none (0.25 for all, as before them) or e.g. bag=0.15,footwear=0.15")
    parser.add_argument("--gender", default=None, help="treat every photo as this product gender (default: predicted)")
    parser.add_argument("--weights", type=Path, default=None, help="detector weights (default: the committed ones)")
    parser.add_argument("--category-head", default="default",
                        help="the whole-photo category head (ml.category_head; default: the committed one when it "
                             "belongs to the embedder), a path (then also the detections' check), or 'none' for the "
                             "nearest products' vote in crop mode")
    parser.add_argument("--kind-head", type=Path, default=None,
                        help="kind head file (ml.kind_head; default: the committed one when it belongs to the embedder)")
    parser.add_argument("--embedder-weights", type=Path, default=None,
                        help="embedder weights (default: the committed ones), e.g. a training run's output")
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos (quick checks)")
    parser.add_argument("--cache-dir", type=Path, default=Path("build/street_to_shop"),
                        help="catalogue embeddings and derived boxes are cached here")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument("--records", action="store_true", help="include every garment's record in the JSON")


def run(args) -> dict:
    from ml.detect import ArticleDetector
    from ml.detection_data import CATEGORIES, load_boxes, split
    from ml.pipeline import parts_from_paths

    started = time.time()
    for path in (args.data / "photos", args.data / "masks", args.data / "labels.txt"):
        if not path.exists():
            raise SystemExit(f"street-to-shop: {path} is missing (--data must hold photos/, masks/, labels.txt)")
    boxes = load_boxes(args.data, "build")
    train_names, val_names = split(boxes)
    names = val_names if args.split == "val" else sorted(boxes)
    if args.limit:
        names = names[: args.limit]
    garments = garments_of(args.data, names, boxes)
    acceptable = street_to_catalogue()
    from ml.category_head import CategoryHead
    from ml.embed import Embedder
    from ml.kind_head import KindHead

    own_head = args.category_head not in ("default", "none")
    parts = parts_from_paths(detector=ArticleDetector(args.weights) if args.weights else None,
                             embedder=Embedder(args.embedder_weights) if args.embedder_weights else None,
                             category_head=False if args.head_checks == "none" else (
                                 CategoryHead(args.category_head) if own_head else None),
                             kind_head=KindHead(args.kind_head) if args.kind_head else None)
    catalogue = Catalogue(args.catalogue_styles, args.catalogue_images, parts.embedder, args.cache_dir)
    result = {"mode": args.mode, "data": str(args.data), "split": args.split, "photos": len(names),
              "garments": len(garments), "k": args.k, "catalogue_products": len(catalogue.products),
              "gender": args.gender or "predicted", "models": parts.versions()}
    floors = shop_floors(args.article_floors)
    result["article_floors"] = floors
    kind_head = parts.head("kind_head")
    if kind_head is not None and args.kind_weight > 0:
        catalogue.use_kinds(kind_head, args.kind_weight, args.candidates)
    result["kind_weight"] = args.kind_weight if catalogue.kinds is not None else 0.0
    result["candidates"] = catalogue.candidates
    if args.mode == "look":
        records, photos = run_look(parts, catalogue, args.data, garments, acceptable, args.k, args.gender,
                                   floors=floors)
        result["pipeline"] = photos
        result["by_category"] = _summarise(records, CATEGORIES, args.k)
    elif args.mode == "crop":
        from ml.category_head import CategoryHead, default_head

        head = None if args.category_head == "none" else (
            default_head() if args.category_head == "default" else CategoryHead(args.category_head))
        result["category_head"] = head.version if head is not None and head.available_for(parts.embedder.version) else None
        records = run_crop(parts, catalogue, args.data, garments, acceptable, args.k, args.gender, head=head,
                           floors=floors)
        result["whole_photo_category_right"] = _vote_summary(records, CATEGORIES)
        result["by_category"] = _summarise(records, CATEGORIES, args.k)
        fallback = [r["fallback_category_share"] for r in records if "fallback_category_share" in r]
        result["fallback_results_in_own_category"] = round(float(np.mean(fallback)), 4) if fallback else None
    else:
        result["models"] = {"embedder": parts.embedder.version}
        all_records = run_variants(parts, catalogue, args.data, garments, acceptable, args.k)
        result["variants"] = {}
        for variant, records in all_records.items():
            summary = _summarise(records, CATEGORIES, args.k)
            summary["top"]["kurta_share"] = round(float(np.mean(
                [t in ("Kurtas", "Kurtis") for r in records if r["category"] == "top" for t in r["types"]])), 4)
            result["variants"][variant] = summary
        result["top_by_box_aspect"] = by_aspect([r for r in all_records["box"] if r["category"] == "top"])
        result["catalogue_top_types"] = catalogue_types(catalogue, "top")
        records = [dict(r, variant=v) for v, rs in all_records.items() for r in rs]
    if args.records:
        result["records"] = records
    result["seconds"] = round(time.time() - started, 1)
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result
