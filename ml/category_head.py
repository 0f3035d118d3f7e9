"""The look category of a whole photo from its embedding (issue 13, item 5: search by photo of one garment).

A visitor's close-up of one shoe, bag or dress is searched as one article when the detector finds nothing
in it (or adds its category's row when the detector found only something else). Which category? The vote
of the nearest catalogue products is weak for street photos: the nearest catalogue photos of a street crop of a
bag or dress, with the person around it, are mostly tops. This head is a linear softmax over the embedder's
vector trained on both domains: the catalogue's own photos (every product with a look category) and the
street garment crops of the detector's *training* split (``ml.street_crops``; the widget's crop and random
margins). It belongs to one embedder version (stored in the file) and is only used with that one.

    python -m ml.category_head --styles S --images I --street DIR --out ml/weights/category-head.npz \
        [--embedder-weights W] [--views 3]

prints its accuracy per domain and category on an inner validation part of the street training photos
(15 %, by photo) before the final fit on all of them.
"""
from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

import numpy as np

from ml.heads import EmbeddingHead, balanced_weights, fit_softmax

DEFAULT_PATH = Path(__file__).resolve().parent / "weights" / "category-head.npz"


class CategoryHead(EmbeddingHead):
    """``predict(vectors) -> [(category, probability)]`` for vectors of ``embedder_version`` only."""

    DEFAULT_PATH = DEFAULT_PATH
    EXTRA = {"categories": lambda value: [str(c) for c in value]}

    @property
    def categories(self) -> list[str]:
        """The look categories of the probabilities' columns."""
        return self._load()["categories"]

    def category_of(self, vector, embedder_version):
        """The most likely category of one vector, or None when this head does not belong to its embedder."""
        return self.predict([vector])[0][0] if self.available_for(embedder_version) else None

    def predict(self, vectors) -> list[tuple[str, float]]:
        p = self.probabilities(vectors)
        categories = self._load()["categories"]
        return [(categories[i], float(row[i])) for row, i in zip(p, p.argmax(axis=1))]


_default = None
_default_lock = threading.Lock()


def default_head() -> CategoryHead:
    """One head per process (its file is read on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = CategoryHead()
        return _default


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def _street_views(crops, views, size, seed=0):
    from ml.street_crops import augment_street_crop

    rng = np.random.default_rng(seed)
    images, owners = [], []
    for i, crop in enumerate(crops):
        for v in range(views):
            # what the embedder sees: the widget's crop first, then random margins (it letterboxes itself)
            images.append(augment_street_crop(crop, rng, size, clean=(v == 0)))
            owners.append(i)
    return images, np.array(owners)


def _embed_street_views(embedder, crops, views, cache_dir):
    """(vectors, owner crop index per vector), cached in ``cache_dir`` per embedder weights file and crops."""
    import hashlib

    from ml.evaluation.retrieval import weights_stamp

    key = "|".join([embedder.version, weights_stamp(embedder), str(views)] + [f"{c.photo}:{c.category}:{c.box}" for c in crops])
    cache = Path(cache_dir) / f"street-views-{embedder.version}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    if cache.exists():
        with np.load(cache) as data:
            return data["vectors"], data["owners"]
    images, owners = _street_views(crops, views, embedder.input_size)
    vectors = np.concatenate([embedder.embed(images[s:s + 256]) for s in range(0, len(images), 256)])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=vectors, owners=owners)
    return vectors, owners


def parse_args(argv=None, prog="python -m ml.category_head", description=__doc__):
    """The command line of a head trained on catalogue photos and street crops (this one and ``ml.kind_head``)."""
    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--styles", required=True, type=Path, help="catalogue styles.csv")
    p.add_argument("--images", required=True, type=Path, help="catalogue images (<id>.jpg)")
    p.add_argument("--street", required=True, type=Path, help="street photos with masks (photos/, masks/, labels.txt)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--embedder-weights", type=Path, default=None, help="default: the committed embedder")
    p.add_argument("--views", type=int, default=3, help="views per street crop (the widget's crop + random margins)")
    p.add_argument("--cache-dir", type=Path, default=Path("build/street_to_shop"))
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from ml.detection_data import CATEGORIES, split
    from ml.embed import Embedder
    from ml.evaluation.retrieval import _embed_products, look_category_of
    from ml.evaluation.street_to_shop import street_to_catalogue
    from ml.product_photos import read_styles
    from ml.street_crops import load_street_crops

    embedder = Embedder(args.embedder_weights)
    products = read_styles(args.styles, args.images)
    category = look_category_of(products)
    keep = category != ""
    products = [p for p, k in zip(products, keep) if k]
    cat_y = np.array([CATEGORIES.index(c) for c in category[keep]])
    cat_x, _ = _embed_products(embedder, products, "none", 32, "catalogue", args.cache_dir)

    all_types = sorted({t for types in street_to_catalogue().values() for t in types})
    crops = load_street_crops(args.street, all_types)
    crop_photo = np.array([c.photo for c in crops])
    street_x, owners = _embed_street_views(embedder, crops, args.views, args.cache_dir)
    street_y = np.array([CATEGORIES.index(crops[i].category) for i in owners])
    street_photo = crop_photo[owners]

    # inner validation: 15 % of the street training photos (by photo) held out of a first fit
    _, inner_val = split(sorted(set(crop_photo)), val_fraction=0.15, seed=7)
    held = np.isin(street_photo, inner_val)
    first_view = np.r_[True, owners[1:] != owners[:-1]]  # the widget's crop of each garment

    def fit(mask):
        x = np.concatenate([cat_x, street_x[mask]])
        y = np.concatenate([cat_y, street_y[mask]])
        domain = np.r_[np.zeros(len(cat_x)), np.ones(mask.sum())]
        return fit_softmax(x.astype(np.float64), y, len(CATEGORIES), balanced_weights(domain, y))

    w, b = fit(~held)
    check = held & first_view
    predicted = (street_x[check] @ w + b).argmax(axis=1)
    truth = street_y[check]
    report = {"event": "inner_validation", "garments": int(check.sum()),
              "accuracy": round(float((predicted == truth).mean()), 4),
              "by_category": {c: round(float((predicted[truth == i] == i).mean()), 4)
                              for i, c in enumerate(CATEGORIES) if (truth == i).any()}}
    print(json.dumps(report), flush=True)
    w, b = fit(np.ones(len(street_x), bool))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    version = f"category-head-1-{embedder.version}"
    np.savez(args.out, weights=w, bias=b, categories=np.array(CATEGORIES), embedder_version=embedder.version,
             version=version)
    print(json.dumps({"event": "done", "out": str(args.out), "version": version, "catalogue": len(cat_x),
                      "street_views": len(street_x), "inner_validation": report}), flush=True)


if __name__ == "__main__":
    main()
