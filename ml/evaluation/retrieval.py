"""``python -m ml.evaluate retrieval``: does the embedder find products of the right kind?

Embeds a catalogue and a set of query photos, retrieves the k nearest catalogue products for each
query (cosine similarity), and reports, for article type, gender, gender+article type and base
colour:

- ``precision@k``: the mean share of the k results that match the query's label;
- ``all_k_tol0``/``tol10``/``tol20`` ("tolerance accuracy"): the share of queries for which at least
  ``(1 - tol) * k`` of the k results match;

over queries whose article type has at least 10 catalogue items (``frequent``) and over all queries,
plus embedding throughput in images per second.

When the catalogue and the query CSV/images are the same, the fixed 20 % hold-out
(``ml.product_photos.split_ids``, the same split training uses) is the query set and the other
80 % the catalogue, so a query never retrieves itself. ``--filters`` restricts the candidates as
the shop does: by the query's true gender and/or look category, or by ``predicted`` gender and
article type (a kNN vote of the same embeddings over the catalogue, as search-by-photo must do
without labels). ``--query-transform`` evaluates on resized or padded copies of the queries, or on
``cross-domain`` copies: each query re-shot as another photographer might (``cross_domain_view``: portrait
3:4 frame, another background, another scale and place, a colour cast, JPEG); with a transform the clean
queries' figures and the gap between the two are reported as well.
``--model both`` prints the ImageNet baseline and the fine-tuned embedder side by side.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

LABELS = ("articleType", "gender", "gender+articleType", "baseColour")
TOLERANCES = (0.2, 0.1, 0.0)
FILTER_CHOICES = ("none", "gender", "category", "gender,category", "predicted")


# --------------------------------------------------------------------------------------------
# Metrics (numpy only; also used by ml.train_embedder)
# --------------------------------------------------------------------------------------------
def product_labels(products) -> dict[str, np.ndarray]:
    return {
        "articleType": np.array([p.article_type for p in products]),
        "gender": np.array([p.gender for p in products]),
        "gender+articleType": np.array([p.gender_article_type for p in products]),
        "baseColour": np.array([p.base_colour for p in products]),
    }


def look_category_of(products, categories_json=None) -> np.ndarray:
    """Look category (top, bottom, dress, footwear, bag) of each product, "" when none."""
    path = Path(categories_json) if categories_json else Path(__file__).resolve().parents[1] / "categories.json"
    look = json.loads(path.read_text())["look"]
    by_article, by_sub = {}, {}
    for name, spec in look.items():
        for a in spec["catalogue"].get("articleType", []):
            by_article[a] = name
        for s in spec["catalogue"].get("subCategory", []):
            by_sub[s] = name
    return np.array([by_article.get(p.article_type) or by_sub.get(p.sub_category) or "" for p in products])


def nearest(catalogue: np.ndarray, queries: np.ndarray, k: int, allowed=None, chunk: int = 1024):
    """Indices (n_queries, k) of the k most similar catalogue rows; ``allowed(q_slice)`` -> bool mask."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        sims = queries[start:start + chunk] @ catalogue.T
        if allowed is not None:
            sims = np.where(allowed(slice(start, start + chunk)), sims, -np.inf)
        part = np.argpartition(-sims, kth=min(k, sims.shape[1] - 1), axis=1)[:, :k]
        order = np.take_along_axis(sims, part, axis=1).argsort(axis=1)[:, ::-1]
        out[start:start + chunk] = np.take_along_axis(part, order, axis=1)
        # candidates filtered away (-inf) are not results: mark them -1
        chosen = np.take_along_axis(sims, out[start:start + chunk], axis=1)
        out[start:start + chunk][~np.isfinite(chosen)] = -1
    return out


def score(neighbours: np.ndarray, cat_labels: dict, q_labels: dict, query_mask: np.ndarray, k: int) -> dict:
    """precision@k and tolerance accuracies per label over the queries in ``query_mask``."""
    result = {"queries": int(query_mask.sum())}
    valid = neighbours >= 0
    safe = np.where(valid, neighbours, 0)
    for name in LABELS:
        match = (cat_labels[name][safe] == q_labels[name][:, None]) & valid
        hits = match.sum(axis=1)[query_mask]
        entry = {f"precision@{k}": round(float(hits.mean() / k), 4) if len(hits) else None}
        for tol in TOLERANCES:
            need = int(np.ceil((1 - tol) * k - 1e-9))
            entry[f"tol{int(round(tol * 100))}"] = round(float((hits >= need).mean()), 4) if len(hits) else None
        result[name] = entry
    return result


def knn_predict(catalogue: np.ndarray, cat_values: np.ndarray, queries: np.ndarray, k: int = 15) -> np.ndarray:
    """Similarity-weighted kNN vote of a catalogue label for each query."""
    neighbours = nearest(catalogue, queries, k)
    preds = []
    for q, row in enumerate(neighbours):
        votes = Counter()
        sims = catalogue[row] @ queries[q]
        for idx, s in zip(row, sims):
            votes[cat_values[idx]] += float(np.exp(10 * s))
        preds.append(votes.most_common(1)[0][0])
    return np.array(preds)


def colour_rerank(neighbours: np.ndarray, cat_emb, q_emb, cat_colour, q_colour, weight: float, k: int, terms=()):
    """Re-order each query's visual candidates by visual similarity + ``weight`` × colour similarity (+ each of
    ``terms``: (catalogue descriptors, query descriptors, weight), e.g. the kind of article).

    The shop's look query does the same: its HNSW index yields the visual candidates, the colour (and kind)
    descriptors stored next to them re-order them (``recommender.queries``).
    """
    terms = [(cat_colour, q_colour, weight)] * (weight > 0) + [t for t in terms if t[2] > 0]
    out = np.full((len(neighbours), k), -1, dtype=np.int64)
    for q, row in enumerate(neighbours):
        row = row[row >= 0]
        if not len(row):
            continue
        score = cat_emb[row] @ q_emb[q] + sum(w * (cat_d[row] @ q_d[q]) for cat_d, q_d, w in terms)
        best = row[np.argsort(-score, kind="stable")[:k]]
        out[q, :len(best)] = best
    return out


KIND_CANDIDATES = 50  # recommender.conf DEFAULTS["COLOUR_CANDIDATES"]


def colour_naming(q_colour_names, q_products) -> dict:
    """How often the main colour read from the photo is the product's own ``baseColour``."""
    from ml.colour import NOT_COLOURS

    labelled = [(name, p.base_colour) for name, p in zip(q_colour_names, q_products)
                if p.base_colour.lower() not in NOT_COLOURS]
    return {"products": len(labelled),
            "main_colour_is_the_label": round(float(np.mean([a == b for a, b in labelled])), 4) if labelled else None}


def evaluate_embeddings(cat_emb, cat_products, q_emb, q_products, k=10, filters="none",
                        categories_json=None, colour=None, kind=None) -> dict:
    """``colour``: (catalogue descriptors, query descriptors, weight, candidates) re-ranks by colour too;
    ``kind``: (catalogue kind descriptors, query kind descriptors, weight) by kind of article (same candidates)."""
    cat_labels, q_labels = product_labels(cat_products), product_labels(q_products)
    allowed = None
    extra = {}
    if filters in ("gender", "category", "gender,category"):
        parts = filters.split(",")
        cat_cat, q_cat = look_category_of(cat_products, categories_json), look_category_of(q_products, categories_json)
        cat_keys = {"gender": cat_labels["gender"], "category": np.where(cat_cat == "", cat_labels["articleType"], cat_cat)}
        q_keys = {"gender": q_labels["gender"], "category": np.where(q_cat == "", q_labels["articleType"], q_cat)}

        def allowed(sl):
            m = np.ones((len(q_keys["gender"][sl]), len(cat_labels["gender"])), bool)
            for p in parts:
                m &= q_keys[p][sl][:, None] == cat_keys[p][None, :]
            return m
    elif filters == "predicted":
        # one vote on the joint label keeps gender and article type consistent (no "Men|Sarees")
        joint = knn_predict(cat_emb, cat_labels["gender+articleType"], q_emb)
        pred_gender = np.array([j.split("|", 1)[0] for j in joint])
        pred_type = np.array([j.split("|", 1)[1] for j in joint])
        extra["predicted_accuracy"] = {
            "gender": round(float((pred_gender == q_labels["gender"]).mean()), 4),
            "articleType": round(float((pred_type == q_labels["articleType"]).mean()), 4),
        }

        def allowed(sl):
            return (pred_gender[sl][:, None] == cat_labels["gender"][None, :]) & (
                pred_type[sl][:, None] == cat_labels["articleType"][None, :]
            )
    elif filters != "none":
        raise ValueError(f"unknown --filters {filters!r}; choose from {', '.join(FILTER_CHOICES)}")
    if (colour is not None and colour[2] > 0) or (kind is not None and kind[2] > 0):
        cat_colour, q_colour, weight, candidates = colour if colour is not None else (None, None, 0.0, KIND_CANDIDATES)
        neighbours = nearest(cat_emb, q_emb, max(k, candidates), allowed)
        neighbours = colour_rerank(neighbours, cat_emb, q_emb, cat_colour, q_colour, weight, k,
                                   terms=[kind] if kind is not None else [])
        extra["colour"] = {"weight": weight, "candidates": candidates}
        if kind is not None:
            extra["kind"] = {"weight": kind[2], "candidates": candidates}
    else:
        neighbours = nearest(cat_emb, q_emb, k, allowed)
    counts = Counter(cat_labels["articleType"])
    frequent = np.array([counts[a] >= 10 for a in q_labels["articleType"]])
    return {
        "frequent_article_types": score(neighbours, cat_labels, q_labels, frequent, k),
        "all_queries": score(neighbours, cat_labels, q_labels, np.ones(len(q_products), bool), k),
        **extra,
    }


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def add_arguments(parser):
    parser.add_argument("--catalogue-styles", required=True, type=Path, help="styles.csv of the catalogue")
    parser.add_argument("--catalogue-images", required=True, type=Path, help="directory of <id>.jpg")
    parser.add_argument("--query-styles", required=True, type=Path, help="styles.csv of the queries")
    parser.add_argument("--query-images", required=True, type=Path, help="directory of <id>.jpg")
    parser.add_argument("--filters", default="none", choices=FILTER_CHOICES)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--model", default="both", choices=("imagenet", "finetuned", "both"))
    parser.add_argument("--weights", type=Path, default=None, help="fine-tuned weights (default: the committed ones)")
    parser.add_argument("--query-transform", default="none", choices=QUERY_TRANSFORMS,
                        help="pad: query shrunk to 60%% on a white canvas; resize: query squashed to 3:4 at half size; "
                             "cross-domain: another photographer's shot of it (cross_domain_view, fixed per query)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N queries (quick runs)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="reuse embeddings between runs (keyed by model, weights file, images and transform)")
    parser.add_argument("--colour-weights", default="",
                        help="comma-separated colour weights to compare (e.g. 0,0.1,0.2): re-rank the visual "
                             "candidates by visual + weight x colour similarity (ml.colour descriptors)")
    parser.add_argument("--shop-colours", action="store_true",
                        help="the catalogue's colour descriptors blend in each product's own baseColour, as the shop "
                             "does for its products when its adapter gives a colour (ml.colour.with_known_colour)")
    parser.add_argument("--kind-weights", default="",
                        help="comma-separated kind weights to compare (e.g. 0,0.2): re-rank the visual candidates by "
                             "visual + weight x kind similarity (ml.kind_head descriptors of both vectors; fine-tuned "
                             "model only)")
    parser.add_argument("--kind-head", type=Path, default=None, help="kind head file (default: the committed one)")
    parser.add_argument("--with-colour-weight", type=float, default=0.0,
                        help="with --kind-weights: also re-rank by colour with this weight, as the shop does")
    parser.add_argument("--colour-candidates", type=int, default=KIND_CANDIDATES,
                        help="visual candidates re-ranked by colour (the look query's candidate count)")


QUERY_TRANSFORMS = ("none", "pad", "resize", "cross-domain")


def cross_domain_view(image, seed: int):
    """The product photo as another photographer's shot (deterministic for a ``seed``): the studio background
    replaced by a plain wall colour or a low-chroma textured scene, the product at 55–90 % of a portrait 3:4
    frame (240–480 px high), off-centre, under a colour cast with other brightness and contrast, saved as a
    JPEG of quality 35–75."""
    from PIL import Image, ImageFilter

    from ml.product_photos import cut_out_mask, jpeg_roundtrip

    rng = np.random.default_rng(seed)
    image = image.convert("RGB")
    height = int(rng.integers(240, 481))
    width = height * 3 // 4
    if rng.random() < 0.5:  # a plain wall: light to mid grey / beige, slightly tinted
        level = rng.integers(110, 236)
        colour = tuple(int(np.clip(level + t, 0, 255)) for t in rng.integers(-20, 21, size=3))
        canvas = Image.new("RGB", (width, height), colour)
    else:  # a street or shop scene out of focus: smoothed low-chroma noise
        level = rng.integers(50, 210)
        grey = rng.normal(level, 45, size=(height // 12 + 1, width // 12 + 1, 1))
        tint = rng.normal(0, 10, size=(height // 12 + 1, width // 12 + 1, 3))
        noise = (grey + tint).clip(0, 255).astype(np.uint8)
        canvas = Image.fromarray(noise).resize((width, height), Image.BILINEAR).filter(ImageFilter.GaussianBlur(6))
    scale = rng.uniform(0.55, 0.9) * min(width / image.width, height / image.height)
    product = image.resize((max(8, round(image.width * scale)), max(8, round(image.height * scale))), Image.BILINEAR)
    x = int(rng.integers(0, width - product.width + 1))
    y = int(rng.integers(0, height - product.height + 1))
    canvas.paste(product, (x, y), cut_out_mask(product))
    arr = np.asarray(canvas, dtype=np.float32) * rng.uniform(0.9, 1.1, size=3)  # white balance
    mean = arr.mean()
    arr = (arr - mean) * rng.uniform(0.85, 1.15) + mean * rng.uniform(0.85, 1.15)
    return jpeg_roundtrip(Image.fromarray(arr.clip(0, 255).astype(np.uint8)), int(rng.integers(35, 76)))


def query_seed(product) -> int:
    """A fixed seed per query product (the same view in every run and for every model)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"cross-domain:{product.id}".encode()).digest()[:8], "big")


def transform_query(image, how: str, seed: int = 0):
    from PIL import Image

    if how == "none":
        return image
    if how == "cross-domain":
        return cross_domain_view(image, seed)
    w, h = image.size
    if how == "pad":
        canvas = Image.new("RGB", (w, h), (255, 255, 255))
        small = image.resize((max(1, int(w * 0.6)), max(1, int(h * 0.6))), Image.BILINEAR)
        canvas.paste(small, ((w - small.width) // 2, (h - small.height) // 2))
        return canvas
    if how == "resize":
        return image.resize((max(1, w // 2), max(1, int(w // 2 * 4 / 3))), Image.BILINEAR)
    raise ValueError(how)


def headline(metrics) -> dict:
    """The figures the targets are set on (queries of frequent article types)."""
    f = metrics["frequent_article_types"]
    return {"articleType_all10": f["articleType"]["tol0"], "gender+articleType_all10": f["gender+articleType"]["tol0"],
            "articleType_p@10": f["articleType"]["precision@10"], "baseColour_p@10": f["baseColour"]["precision@10"]}


def weights_stamp(embedder) -> str:
    """Size and modification time of the embedder's weights file ("" for built-in weights): part of every cache
    key, so a retrained file is never answered from the cache of the one it replaced."""
    weights = getattr(embedder, "weights", None)
    return f"{weights.stat().st_size}:{weights.stat().st_mtime_ns}" if weights is not None and weights.exists() else ""


def _embed_products(embedder, products, transform="none", batch_size=32, desc="embedding", cache_dir=None):
    from PIL import Image
    from tqdm import tqdm

    cache = None
    if cache_dir is not None:
        import hashlib

        key = "|".join([embedder.version, str(embedder.input_size), weights_stamp(embedder), transform] + [str(p.image_path) for p in products])
        cache = Path(cache_dir) / f"{embedder.version}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
        if cache.exists():
            with np.load(cache) as data:
                return data["vectors"], float(data["images_per_second"])

    out, seconds = [], 0.0
    for start in tqdm(range(0, len(products), 256), desc=desc, unit="x256", leave=False):
        chunk = products[start:start + 256]
        images = [transform_query(Image.open(p.image_path).convert("RGB"), transform, query_seed(p)) for p in chunk]
        t = time.perf_counter()
        out.append(embedder.embed(images, batch_size=batch_size))
        seconds += time.perf_counter() - t
    vectors, ips = np.concatenate(out), len(products) / max(seconds, 1e-9)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, vectors=vectors, images_per_second=ips)
    return vectors, ips


def _colour_products(products, transform="none", desc="colour", cache_dir=None):
    """(descriptors (n, K), main colour names) of product photos, whole image (``ml.colour``)."""
    from PIL import Image
    from tqdm import tqdm

    from ml.colour import ColourReader

    reader = ColourReader()
    cache = None
    if cache_dir is not None:
        import hashlib

        key = "|".join([reader.version, transform] + [str(p.image_path) for p in products])
        cache = Path(cache_dir) / f"colour-{reader.version}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
        if cache.exists():
            with np.load(cache) as data:
                return data["descriptors"], list(data["names"])
    descriptors, names = [], []
    for p in tqdm(products, desc=desc, unit="photo", leave=False):
        with Image.open(p.image_path) as img:
            colour = reader.read(transform_query(img.convert("RGB"), transform, query_seed(p)), [None])[0]
        descriptors.append(colour.descriptor)
        names.append(colour.main)
    descriptors = np.stack(descriptors).astype(np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, descriptors=descriptors, names=np.array(names))
    return descriptors, names


def with_shop_colours(descriptors: np.ndarray, products) -> np.ndarray:
    """Catalogue descriptors with each product's own colour word blended in (``ml.colour.with_known_colour``)."""
    from ml.colour import Colour, with_known_colour

    out = []
    for descriptor, product in zip(descriptors, products):
        probabilities = (descriptor.astype(np.float64) ** 2).astype(np.float32)
        read = Colour(names=(("", 1.0),), probabilities=probabilities, descriptor=descriptor)
        out.append(with_known_colour(read, product.base_colour).descriptor)
    return np.stack(out).astype(np.float32)


def run(args) -> dict:
    from PIL import Image

    from ml.product_photos import read_styles, split_ids

    catalogue = read_styles(args.catalogue_styles, args.catalogue_images)
    queries = read_styles(args.query_styles, args.query_images)
    same = (args.catalogue_styles.resolve() == args.query_styles.resolve()
            and args.catalogue_images.resolve() == args.query_images.resolve())
    if same:
        catalogue, queries = split_ids(catalogue)
    else:
        query_ids = {p.id for p in queries}
        catalogue = [p for p in catalogue if p.id not in query_ids]
    if args.limit:
        queries = queries[: args.limit]
    if not catalogue or not queries:
        raise SystemExit("retrieval: empty catalogue or query set (check the CSVs and image directories)")
    models = ["imagenet", "finetuned"] if args.model == "both" else [args.model]
    weights = [float(w) for w in args.colour_weights.split(",") if w.strip()]
    kind_weights = [float(w) for w in args.kind_weights.split(",") if w.strip()]
    result = {
        "catalogue": len(catalogue), "queries": len(queries), "held_out_split": same, "k": args.k,
        "filters": args.filters, "query_transform": args.query_transform, "models": {},
    }
    from ml.embed import Embedder, ImageNetEmbedder

    for name in models:
        embedder = ImageNetEmbedder() if name == "imagenet" else Embedder(weights=args.weights)
        embedder.embed([Image.new("RGB", (64, 64))])  # load the weights and warm up outside the timing
        cat_emb, ips_cat = _embed_products(embedder, catalogue, "none", args.batch_size, f"{name}: catalogue",
                                           args.cache_dir)
        q_emb, ips_q = _embed_products(embedder, queries, args.query_transform, args.batch_size, f"{name}: queries",
                                       args.cache_dir)
        metrics = evaluate_embeddings(cat_emb, catalogue, q_emb, queries, args.k, args.filters)
        result["models"][name] = {
            "version": embedder.version, "dim": embedder.dim,
            "images_per_second": round((len(catalogue) + len(queries)) / (len(catalogue) / ips_cat + len(queries) / ips_q), 1),
            **metrics,
        }
        if args.query_transform != "none":  # the same queries as they are, and how much the transform costs
            clean_emb, _ = _embed_products(embedder, queries, "none", args.batch_size, f"{name}: clean queries",
                                           args.cache_dir)
            clean = headline(evaluate_embeddings(cat_emb, catalogue, clean_emb, queries, args.k, args.filters))
            moved = headline(metrics)
            result["models"][name]["clean_queries"] = clean
            result["models"][name]["gap_clean_minus_transformed"] = {k: round(clean[k] - moved[k], 4) for k in clean}
        if weights:
            from ml.colour import ColourReader

            cat_col, _ = _colour_products(catalogue, "none", "colour: catalogue", args.cache_dir)
            if args.shop_colours:
                cat_col = with_shop_colours(cat_col, catalogue)
            result["shop_colours"] = bool(args.shop_colours)
            q_col, q_names = _colour_products(queries, args.query_transform, "colour: queries", args.cache_dir)
            result["colour_reader"] = ColourReader().version
            result["colour_naming"] = colour_naming(q_names, queries)
            result["models"][name]["by_colour_weight"] = {
                str(w): evaluate_embeddings(cat_emb, catalogue, q_emb, queries, args.k, args.filters,
                                            colour=(cat_col, q_col, w, args.colour_candidates))
                for w in weights
            }
        if kind_weights and name == "finetuned":
            from ml.kind_head import KindHead

            head = KindHead(args.kind_head) if args.kind_head else KindHead()
            if not head.available_for(embedder.version):
                raise SystemExit(f"retrieval: the kind head {head.path} is not for embedder {embedder.version}")
            cat_kind, q_kind = head.descriptors(cat_emb), head.descriptors(q_emb)
            colour_weight = float(args.with_colour_weight)
            colour = None
            if colour_weight > 0:
                cat_col, _ = _colour_products(catalogue, "none", "colour: catalogue", args.cache_dir)
                if args.shop_colours:
                    cat_col = with_shop_colours(cat_col, catalogue)
                q_col, _ = _colour_products(queries, args.query_transform, "colour: queries", args.cache_dir)
                colour = (cat_col, q_col, colour_weight, args.colour_candidates)
            result["kind_head"] = head.version
            result["models"][name]["by_kind_weight"] = {
                str(w): evaluate_embeddings(cat_emb, catalogue, q_emb, queries, args.k, args.filters, colour=colour,
                                            kind=(cat_kind, q_kind, w))
                for w in kind_weights
            }
            result["models"][name]["by_kind_weight_colour_weight"] = colour_weight
    return result
