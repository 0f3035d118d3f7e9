"""What kind of article a vector shows (a blouse, a coat, a sneaker …), as a descriptor the look query compares.

The embedder places a street photo's long coat near the catalogue's kurtas (both long and narrow) and a shirt
under a blazer near jackets: its nearest products are the right look category but often the wrong kind. This
head is a linear softmax over the embedder's vector into the catalogue's article types (``articleType`` of every
product with a look category), trained on both domains like ``ml.category_head``: the catalogue's own photos of
the fixed product split's *training* side (the hold-out is never seen) and the street garment crops of the
detector's *training* split, each labelled with the catalogue type its street label maps to
(``ml.evaluation.street_to_shop.street_to_catalogue``; the most common one when several fit).

``KindHead.descriptors(vectors)`` gives the square roots of the type probabilities (unit length, like the
colour descriptor of ``ml.colour``: the cosine of two descriptors is the Bhattacharyya coefficient of the two
distributions, 1 = the same kind). Every article (and every whole catalogue photo) stores one next to its vector;
the look query re-orders its visual candidates by ``KIND_WEIGHT`` × (1 − that similarity). The shop's own
product types are never needed: a product's kind is read from its own photo, as its colour is.

    python -m ml.kind_head --styles S --images I --street DIR --out ml/weights/kind-head.npz [--embedder-weights W]

prints its accuracy on the catalogue hold-out and on the street validation garments (neither seen in training).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ml.heads import EmbeddingHead, balanced_weights, fit_softmax

DEFAULT_PATH = Path(__file__).resolve().parent / "weights" / "kind-head.npz"


class KindHead(EmbeddingHead):
    """``descriptors(vectors) -> (n, len(types))`` for vectors of ``embedder_version`` only."""

    DEFAULT_PATH = DEFAULT_PATH
    EXTRA = {"types": lambda value: [str(t) for t in value]}

    @property
    def types(self) -> list[str]:
        return self._load().get("types", [])

    @property
    def dim(self) -> int:
        return len(self.types)

    def descriptors(self, vectors) -> np.ndarray:
        """Unit-length kind descriptors (square roots of the type probabilities), float32."""
        return np.sqrt(self.probabilities(vectors)).astype(np.float32)


def main(argv=None):
    from ml.category_head import _embed_street_views, parse_args

    args = parse_args(argv, prog="python -m ml.kind_head", description=__doc__)
    from ml.embed import Embedder
    from ml.evaluation.retrieval import _embed_products, look_category_of
    from ml.evaluation.street_to_shop import street_to_catalogue
    from ml.product_photos import is_held_out, read_styles
    from ml.street_crops import load_street_crops

    embedder = Embedder(args.embedder_weights)
    products = read_styles(args.styles, args.images)
    category = look_category_of(products)
    products = [p for p, c in zip(products, category) if c]
    types = sorted({p.article_type for p in products})
    index = {t: i for i, t in enumerate(types)}
    vectors, _ = _embed_products(embedder, products, "none", 32, "catalogue", args.cache_dir)
    labels = np.array([index[p.article_type] for p in products])
    held = np.array([is_held_out(p.id) for p in products])

    crops = load_street_crops(args.street, types)
    street_x, owners = _embed_street_views(embedder, crops, args.views, args.cache_dir)
    counts = {t: int((labels == i).sum()) for t, i in index.items()}
    street_y = np.array([index[max(crops[i].article_types, key=lambda t: counts.get(t, 0))] for i in owners])

    x = np.concatenate([vectors[~held], street_x]).astype(np.float64)
    y = np.concatenate([labels[~held], street_y])
    domain = np.r_[np.zeros((~held).sum()), np.ones(len(street_x))]
    weights, bias = fit_softmax(x, y, len(types), balanced_weights(domain, y))
    version = f"kind-head-1-{embedder.version}"

    # Figures on what it never saw: the catalogue hold-out, and the street validation garments (an acceptable type)
    predicted = (vectors[held] @ weights + bias).argmax(axis=1)
    report = {"event": "done", "out": str(args.out), "version": version, "types": len(types),
              "catalogue_train": int((~held).sum()), "street_views": len(street_x),
              "catalogue_holdout_accuracy": round(float((predicted == labels[held]).mean()), 4)}
    val_crops = load_street_crops(args.street, types, split_name="val")
    if val_crops:
        val_x = embedder.embed([c.image for c in val_crops])
        val_pred = (val_x @ weights + bias).argmax(axis=1)
        report["street_val_acceptable"] = round(float(np.mean(
            [types[p] in c.article_types for p, c in zip(val_pred, val_crops)])), 4)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, weights=weights.astype(np.float32), bias=bias.astype(np.float32), types=np.array(types),
             embedder_version=embedder.version, version=version)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
