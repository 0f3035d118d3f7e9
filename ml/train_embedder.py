"""Train the article embedder: ``python -m ml.train_embedder --styles CSV --images DIR --out PATH``.

Model: torchvision-exact MobileNetV2 (ImageNet, ``ml.backbone``) -> global average pool ->
Dense(dim) -> L2 normalisation. The lower blocks (``features.0`` .. ``features.<train-from - 1>``)
stay frozen; the upper blocks and the head are fine-tuned. BatchNorm runs in inference mode.

Loss (``--loss``): proxy-anchor (Kim et al. 2020) summed over three label sets — gender+article
type, article type, and base colour (weight ``--colour-weight``) — or supervised contrastive /
batch-hard triplet on gender+article type for comparison. ``--study`` runs the short head-only
comparison of the losses on frozen features that chose the default (see ml/weights/EMBEDDER.md).

Data: the fixed 80 % training side of ``ml.product_photos.split_ids`` (the evaluation's hold-out
is never seen), augmented by ``augment_like_a_crop``. Every epoch writes ``<out>`` (weights the app
loads), ``<out>.ckpt/`` (head proxies, epoch, history) and a line in ``<out>.log``; ``--resume``
continues from the checkpoint (optimizer moments restart). ``--init-from W`` starts a new cycle
from an earlier embedder W (its proxies are first fitted to W's clean embeddings, so the backbone
is not shaken by random proxies); ``--clean-fraction`` makes that share of the views the clean
letterboxed catalogue photo, as the catalogue side of a search is.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m ml.train_embedder", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--styles", required=True, type=Path, help="styles.csv")
    p.add_argument("--images", required=True, type=Path, help="directory of <id>.jpg")
    p.add_argument("--out", required=True, type=Path, help="output weights, e.g. ml/weights/embedder.weights.h5")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--size", type=int, default=160, help="training/inference resolution")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--train-from", type=int, default=11, help="first trainable torchvision features block")
    p.add_argument("--loss", default="proxy_anchor", choices=("proxy_anchor", "supcon", "triplet"))
    p.add_argument("--colour-weight", type=float, default=0.3)
    p.add_argument("--lr", type=float, default=2e-4, help="backbone learning rate (head x5, proxies x50)")
    p.add_argument("--eval-every", type=int, default=5, help="hold-out retrieval check every N epochs (0: never)")
    p.add_argument("--version", default="embed-mnv2-pa-v4", help="version string stored with every vector")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--init-from", type=Path, default=None, metavar="WEIGHTS",
                   help="start from an earlier embedder (backbone + head, same --dim); the proxies start at the "
                        "class means of its clean training-side embeddings")
    p.add_argument("--clean-fraction", type=float, default=0.0,
                   help="share of training views that are the clean letterboxed catalogue photo (random flip) "
                        "instead of a crop-like augmentation")
    p.add_argument("--reshot-fraction", type=float, default=0.0,
                   help="share of training views that are the product re-shot as another photographer might "
                        "(ml.product_photos.augment_reshot) instead of a crop-like augmentation")
    p.add_argument("--street", type=Path, default=None, metavar="DIR",
                   help="street photos with masks (photos/, masks/, labels.txt): the garments of the detector's "
                        "training split join the article-type loss as a second domain (ml.street_crops)")
    p.add_argument("--street-fraction", type=float, default=0.25,
                   help="share of every batch that is street garment crops (with --street)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="use only N training products (smoke runs)")
    p.add_argument("--study", action="store_true", help="head-only loss comparison on frozen features, then exit")
    p.add_argument("--refit-head", type=Path, default=None, metavar="WEIGHTS",
                   help="second stage: keep the backbone of WEIGHTS, re-fit the head on clean + augmented "
                        "views of the training side, write --out (decided on an inner validation split)")
    p.add_argument("--refit-steps", type=int, default=3000)
    return p.parse_args(argv)


# --------------------------------------------------------------------------------------------
# Losses (TensorFlow)
# --------------------------------------------------------------------------------------------
def proxy_anchor_loss(emb, labels, proxies, alpha=32.0, delta=0.1, valid=None):
    """``labels``: class codes (B,) or a multi-hot matrix (B, C) — a sample may be a positive of several
    proxies; ``valid`` (B,): 0 for samples without this label set (neither positive nor negative)."""
    import tensorflow as tf

    p = tf.math.l2_normalize(proxies, axis=1)
    sim = tf.matmul(emb, p, transpose_b=True)  # (B, C)
    pos = tf.one_hot(labels, tf.shape(p)[0]) if labels.shape.rank == 1 else labels
    neg = 1.0 - pos
    if valid is not None:
        pos, neg = pos * valid[:, None], neg * valid[:, None]
    pos_exp = tf.where(pos > 0, tf.exp(-alpha * (sim - delta)), 0.0)
    neg_exp = tf.where(neg > 0, tf.exp(alpha * (sim + delta)), 0.0)
    with_pos = tf.reduce_sum(pos, axis=0) > 0
    n_pos = tf.maximum(tf.reduce_sum(tf.cast(with_pos, tf.float32)), 1.0)
    pos_term = tf.reduce_sum(tf.where(with_pos, tf.math.log1p(tf.reduce_sum(pos_exp, axis=0)), 0.0)) / n_pos
    neg_term = tf.reduce_mean(tf.math.log1p(tf.reduce_sum(neg_exp, axis=0)))
    return pos_term + neg_term


def supcon_loss(emb, labels, temperature=0.1):
    import tensorflow as tf

    b = tf.shape(emb)[0]
    logits = tf.matmul(emb, emb, transpose_b=True) / temperature
    eye = tf.eye(b)
    logits = logits - 1e9 * eye
    same = tf.cast(tf.equal(labels[:, None], labels[None, :]), tf.float32) * (1 - eye)
    log_prob = logits - tf.reduce_logsumexp(logits, axis=1, keepdims=True)
    n = tf.reduce_sum(same, axis=1)
    per = -tf.reduce_sum(same * log_prob, axis=1) / tf.maximum(n, 1.0)
    has = tf.cast(n > 0, tf.float32)
    return tf.reduce_sum(per * has) / tf.maximum(tf.reduce_sum(has), 1.0)


def triplet_loss(emb, labels, margin=0.2):
    import tensorflow as tf

    d = 2.0 - 2.0 * tf.matmul(emb, emb, transpose_b=True)
    same = tf.equal(labels[:, None], labels[None, :])
    eye = tf.cast(tf.eye(tf.shape(emb)[0]), tf.bool)
    pos = tf.logical_and(same, tf.logical_not(eye))
    hardest_pos = tf.reduce_max(tf.where(pos, d, -1e9), axis=1)
    hardest_neg = tf.reduce_min(tf.where(same, 1e9, d), axis=1)
    has = tf.cast(tf.reduce_any(pos, axis=1), tf.float32)
    return tf.reduce_sum(tf.nn.relu(hardest_pos - hardest_neg + margin) * has) / tf.maximum(tf.reduce_sum(has), 1.0)


class LabelSets:
    """Integer codes of the three label sets used by the losses."""

    NAMES = ("gender_article_type", "article_type", "base_colour")

    def __init__(self, products):
        self.vocab = {}
        self.codes = {}
        for name in self.NAMES:
            values = [getattr(p, name) for p in products]
            vocab = sorted(set(values))
            self.vocab[name] = vocab
            index = {v: i for i, v in enumerate(vocab)}
            self.codes[name] = np.array([index[v] for v in values], dtype=np.int32)


def combined_loss(kind, emb, labels, proxies, colour_weight, valid=(None, None, None)):
    if kind == "proxy_anchor":
        loss = (proxy_anchor_loss(emb, labels[0], proxies[0], valid=valid[0])
                + proxy_anchor_loss(emb, labels[1], proxies[1], valid=valid[1]))
        return loss + colour_weight * proxy_anchor_loss(emb, labels[2], proxies[2], valid=valid[2])
    if kind == "supcon":
        return supcon_loss(emb, labels[0]) + colour_weight * supcon_loss(emb, labels[2])
    return triplet_loss(emb, labels[0]) + colour_weight * triplet_loss(emb, labels[2])


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
class BatchLoader:
    """Background threads producing augmented batches (uint8 images, index arrays)."""

    def __init__(self, products, batch_size, size, seed, steps, workers=2, clean_fraction=0.0,
                 street=(), street_fraction=0.0, reshot_fraction=0.0):
        self.products, self.batch_size, self.size = products, batch_size, size
        self.clean_fraction, self.reshot_fraction = clean_fraction, reshot_fraction
        # street crops are indexed after the products: index len(products) + i is street[i]
        self.street = list(street)
        self.n_street = int(round(batch_size * street_fraction)) if self.street else 0
        self.rng = np.random.default_rng(seed)
        self.steps = steps
        self.queue: queue.Queue = queue.Queue(maxsize=6)
        self.pool = ThreadPoolExecutor(workers)
        self.thread = threading.Thread(target=self._produce, daemon=True)
        self.thread.start()

    def _one(self, args):
        from PIL import Image

        from ml.product_photos import augment_like_a_crop, augment_reshot, letterbox

        index, seed = args
        rng = np.random.default_rng(seed)
        if index >= len(self.products):
            from ml.street_crops import augment_street_crop

            crop = self.street[index - len(self.products)]
            return np.asarray(augment_street_crop(crop, rng, self.size, clean=rng.random() < self.clean_fraction),
                              dtype=np.uint8)
        with Image.open(self.products[index].image_path) as im:
            draw = rng.random()
            if draw < self.clean_fraction:
                view = letterbox(im, self.size)
                if rng.random() < 0.5:
                    view = view.transpose(Image.FLIP_LEFT_RIGHT)
            elif draw < self.clean_fraction + self.reshot_fraction:
                view = augment_reshot(im, rng, self.size)
            else:
                view = augment_like_a_crop(im, rng, self.size)
        return np.asarray(view, dtype=np.uint8)

    def _produce(self):
        order = self.rng.permutation(len(self.products))
        pos = 0
        n_products = self.batch_size - self.n_street
        for _ in range(self.steps):
            if pos + n_products > len(order):
                order, pos = self.rng.permutation(len(self.products)), 0
            idx = order[pos:pos + n_products]
            pos += n_products
            if self.n_street:
                idx = np.concatenate([idx, len(self.products) + self.rng.choice(len(self.street), self.n_street)])
            seeds = self.rng.integers(0, 2**63 - 1, size=len(idx))
            images = np.stack(list(self.pool.map(self._one, zip(idx, seeds))))
            self.queue.put((images, idx))
        self.queue.put(None)

    def __iter__(self):
        while (item := self.queue.get()) is not None:
            yield item


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------
def block_index(layer_name: str):
    if layer_name.startswith("features_"):
        return int(layer_name.split("_")[1])
    return None


def build_trainable(size, dim, train_from, weights="imagenet"):
    from ml.embed import build_embedding_model

    model = build_embedding_model(dim=dim, input_size=size, backbone_weights=weights)
    for layer in model.layers:
        idx = block_index(layer.name)
        if idx is not None:
            layer.trainable = idx >= train_from
    return model


def street_label_tables(labels: LabelSets, street):
    """Per label set, a (products + street crops, classes) multi-hot matrix and a validity vector: a
    product is a one-hot positive of its class in all three sets; a street crop is a positive of every
    article type its fine label accepts and takes no part in the gender+type and colour sets."""
    tables = []
    for name in LabelSets.NAMES:
        n_classes = len(labels.vocab[name])
        codes = labels.codes[name]
        matrix = np.zeros((len(codes) + len(street), n_classes), np.float32)
        matrix[np.arange(len(codes)), codes] = 1.0
        valid = np.zeros(len(codes) + len(street), np.float32)
        valid[:len(codes)] = 1.0
        if name == "article_type":
            index = {v: i for i, v in enumerate(labels.vocab[name])}
            for i, crop in enumerate(street):
                matrix[len(codes) + i, [index[t] for t in crop.article_types]] = 1.0
            valid[len(codes):] = 1.0
        tables.append((matrix, valid))
    return tables


def _log(path: Path, record: dict):
    line = json.dumps(record)
    print(line, flush=True)
    with open(path, "a") as fh:
        fh.write(line + "\n")


def clean_embeddings(model, products, size, batch=64):
    """Embeddings of the clean letterboxed catalogue photos."""
    from PIL import Image

    from ml.embed import _letterbox_batch
    from ml.loading import CompiledModel

    run = CompiledModel(model, size).run
    out = []
    for s in range(0, len(products), batch):
        out.append(run(_letterbox_batch([Image.open(p.image_path) for p in products[s:s + batch]], size)).numpy())
    return np.concatenate(out)


def class_means(embeddings, codes, n_classes):
    """L2-normalised mean embedding of every class (proxy initialisation)."""
    means = np.zeros((n_classes, embeddings.shape[1]), np.float32)
    np.add.at(means, codes, embeddings)
    return means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)


def fit_proxies(proxies, embeddings, labels, args, steps=1500):
    """Fit only the proxies to fixed embeddings, so fine-tuning starts from a settled loss."""
    import keras
    import tensorflow as tf

    x = tf.constant(embeddings)
    codes = [tf.constant(labels.codes[n]) for n in LabelSets.NAMES]
    opt = keras.optimizers.Adam(1e-2)

    @tf.function
    def step(idx):
        with tf.GradientTape() as tape:
            loss = combined_loss(args.loss, tf.gather(x, idx), [tf.gather(c, idx) for c in codes], proxies,
                                 args.colour_weight)
        opt.apply_gradients(zip(tape.gradient(loss, proxies), proxies))
        return loss

    rng = np.random.default_rng(args.seed)
    batches = [tf.constant(rng.choice(len(embeddings), min(args.batch_size, len(embeddings)), replace=False), tf.int32)
               for _ in range(steps)]
    first = float(np.mean([float(step(b)) for b in batches[:20]]))
    last = [float(step(b)) for b in batches[20:]]
    return first, float(np.mean(last[-100:]))


def hold_out_check(model, train, held, size, limit_queries=None):
    """Retrieval metrics (no filters, k=10) of the current model: train side as catalogue."""
    from ml.evaluation.retrieval import evaluate_embeddings, headline

    queries = held[:limit_queries] if limit_queries else held
    return headline(evaluate_embeddings(clean_embeddings(model, train, size), train,
                                        clean_embeddings(model, queries, size), queries, 10, "none"))


def train(args):
    import keras
    import tensorflow as tf

    from ml.product_photos import read_styles, split_ids

    tf.random.set_seed(args.seed)
    products = read_styles(args.styles, args.images)
    train_set, held = split_ids(products)
    if args.limit:
        train_set = train_set[: args.limit]
    labels = LabelSets(train_set)
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt_dir = Path(str(out) + ".ckpt")
    log_path = Path(str(out) + ".log")
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    street = []
    if args.street:
        if args.loss != "proxy_anchor":
            raise SystemExit("--street needs --loss proxy_anchor (a street crop is a positive of several article types)")
        from ml.street_crops import load_street_crops

        street = load_street_crops(args.street, labels.vocab["article_type"])
    model = build_trainable(args.size, args.dim, args.train_from)
    n_classes = [len(labels.vocab[n]) for n in LabelSets.NAMES]
    init = np.random.default_rng(args.seed)
    proxies = [tf.Variable(init.normal(size=(c, args.dim)).astype("float32"), name=f"proxies_{n}")
               for c, n in zip(n_classes, LabelSets.NAMES)]
    start_epoch = 0
    state_path = ckpt_dir / "state.json"
    if args.resume and state_path.exists():
        state = json.loads(state_path.read_text())
        model.load_weights(ckpt_dir / "model.weights.h5")
        with np.load(ckpt_dir / "proxies.npz") as data:
            for v, n in zip(proxies, LabelSets.NAMES):
                v.assign(data[n])
        start_epoch = state["epoch"]
        _log(log_path, {"event": "resume", "epoch": start_epoch})
    elif args.init_from:
        model.load_weights(args.init_from)
        clean = clean_embeddings(model, train_set, args.size)
        for v, n in zip(proxies, LabelSets.NAMES):
            v.assign(class_means(clean, labels.codes[n], v.shape[0]))
        before, after = fit_proxies(proxies, clean, labels, args)
        _log(log_path, {"event": "init_from", "weights": str(args.init_from),
                        "proxy_loss_before": round(before, 3), "proxy_loss_after": round(after, 3)})

    steps_per_epoch = max(1, len(train_set) // args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    backbone_vars = [v for v in model.trainable_variables if not v.path.startswith("embedding")]
    head_vars = [v for v in model.trainable_variables if v.path.startswith("embedding")]

    def schedule(base):
        return keras.optimizers.schedules.CosineDecay(base, total_steps, warmup_target=None, alpha=0.02)

    opt_backbone = keras.optimizers.Adam(schedule(args.lr))
    opt_head = keras.optimizers.Adam(schedule(args.lr * 5))
    opt_proxy = keras.optimizers.Adam(schedule(args.lr * 50))
    # jump the schedules to the resumed step
    for opt in (opt_backbone, opt_head, opt_proxy):
        opt.iterations.assign(start_epoch * steps_per_epoch)
    if street:
        tables = street_label_tables(labels, street)
        codes = [tf.constant(m) for m, _ in tables]
        valids = [tf.constant(v) for _, v in tables]
    else:
        codes = [tf.constant(labels.codes[n]) for n in LabelSets.NAMES]
        valids = None

    @tf.function(reduce_retracing=True)
    def step(images, idx):
        batch_labels = [tf.gather(c, idx) for c in codes]
        batch_valid = [tf.gather(v, idx) for v in valids] if valids else (None, None, None)
        with tf.GradientTape() as tape:
            emb = model(images, training=False)
            loss = combined_loss(args.loss, emb, batch_labels, proxies, args.colour_weight, batch_valid)
        grads = tape.gradient(loss, backbone_vars + head_vars + proxies)
        nb, nh = len(backbone_vars), len(head_vars)
        opt_backbone.apply_gradients(zip(grads[:nb], backbone_vars))
        opt_head.apply_gradients(zip(grads[nb:nb + nh], head_vars))
        opt_proxy.apply_gradients(zip(grads[nb + nh:], proxies))
        return loss

    from collections import Counter

    _log(log_path, {"event": "start", "train_products": len(train_set), "held_out": len(held),
                    "street_crops": dict(Counter(c.category for c in street)),
                    "classes": dict(zip(LabelSets.NAMES, n_classes)), "args": {k: str(v) for k, v in vars(args).items()},
                    "trainable_params": int(sum(np.prod(v.shape) for v in model.trainable_variables))})
    from tqdm import tqdm

    for epoch in range(start_epoch, args.epochs):
        t0 = time.time()
        loader = BatchLoader(train_set, args.batch_size, args.size, seed=args.seed * 1000 + epoch, steps=steps_per_epoch,
                             clean_fraction=args.clean_fraction, street=street, street_fraction=args.street_fraction,
                             reshot_fraction=args.reshot_fraction)
        losses = []
        bar = tqdm(loader, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{args.epochs}", mininterval=30)
        for images, idx in bar:
            loss = float(step(tf.constant(images, tf.float32), tf.constant(idx, tf.int32)))
            losses.append(loss)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        # checkpoint: app weights + resumable state (written atomically)
        tmp = out.with_name(out.name + ".tmp.weights.h5")
        model.save_weights(tmp)
        os.replace(tmp, out)
        Path(str(out) + ".json").write_text(json.dumps(
            {"version": args.version, "dim": args.dim, "input_size": args.size, "epochs_done": epoch + 1}, indent=1))
        model.save_weights(ckpt_dir / "model.weights.h5")
        np.savez(ckpt_dir / "proxies.npz", **{n: v.numpy() for v, n in zip(proxies, LabelSets.NAMES)})
        state_path.write_text(json.dumps({"epoch": epoch + 1, "vocab": labels.vocab}))
        record = {"event": "epoch", "epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4),
                  "seconds": round(time.time() - t0, 1), "images_per_second": round(len(losses) * args.batch_size / (time.time() - t0), 1)}
        if args.eval_every and ((epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs):
            t1 = time.time()
            record["hold_out"] = hold_out_check(model, train_set, held, args.size)
            record["eval_seconds"] = round(time.time() - t1, 1)
        _log(log_path, record)
    _log(log_path, {"event": "done", "weights": str(out)})


# --------------------------------------------------------------------------------------------
# Head-only loss study on frozen features
# --------------------------------------------------------------------------------------------
def study(args):
    """Compare the losses by training only the head on frozen (cached, unaugmented) features.

    Uses a validation split *inside* the training side (a second id hash), never the hold-out.
    """
    import keras
    import tensorflow as tf
    from PIL import Image

    from ml.evaluation.retrieval import evaluate_embeddings
    from ml.product_photos import is_held_out, letterbox, read_styles, split_ids

    products = read_styles(args.styles, args.images)
    train_side, _ = split_ids(products)
    if args.limit:
        train_side = train_side[: args.limit]
    fit = [p for p in train_side if not is_held_out(p.id, 0.2, seed="embedder-loss-study")]
    val = [p for p in train_side if is_held_out(p.id, 0.2, seed="embedder-loss-study")]
    from ml.embed import build_embedding_model

    import tensorflow as tf

    model = build_embedding_model(dim=None, input_size=args.size)  # GAP features, no head
    base = tf.function(lambda x: model(x, training=False))
    cache = Path(str(args.out) + f".study-features-{args.size}.npz")
    if cache.exists():
        with np.load(cache) as d:
            feats = {p.id: f for p, f in zip(train_side, d["features"])} if len(d["features"]) == len(train_side) else None
    else:
        feats = None
    if feats is None:
        rows = []
        for s in range(0, len(train_side), 64):
            batch = np.stack([np.asarray(letterbox(Image.open(p.image_path), args.size), np.float32) for p in train_side[s:s + 64]])
            rows.append(base(tf.constant(batch)).numpy())
        arr = np.concatenate(rows)
        np.savez(cache, features=arr)
        feats = {p.id: f for p, f in zip(train_side, arr)}
    x_fit = np.stack([feats[p.id] for p in fit])
    x_val = np.stack([feats[p.id] for p in val])
    labels = LabelSets(fit)
    results = {}
    x_val_n = x_val / np.linalg.norm(x_val, axis=1, keepdims=True)
    x_fit_n = x_fit / np.linalg.norm(x_fit, axis=1, keepdims=True)
    results["gap_no_head"] = _summary(evaluate_embeddings(x_fit_n, fit, x_val_n, val, 10, "none"))
    for kind in ("proxy_anchor", "supcon", "triplet"):
        tf.random.set_seed(0)
        head = keras.layers.Dense(args.dim)
        head.build((None, x_fit.shape[1]))
        proxies = [tf.Variable(np.random.default_rng(0).normal(size=(len(labels.vocab[n]), args.dim)).astype("float32"))
                   for n in LabelSets.NAMES]
        opt, popt = keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-2)
        codes = [tf.constant(labels.codes[n]) for n in LabelSets.NAMES]
        xf = tf.constant(x_fit)

        @tf.function
        def step(idx):
            with tf.GradientTape() as tape:
                emb = tf.math.l2_normalize(head(tf.gather(xf, idx)), axis=1)
                loss = combined_loss(kind, emb, [tf.gather(c, idx) for c in codes], proxies, args.colour_weight)
            vars_ = head.trainable_variables + (proxies if kind == "proxy_anchor" else [])
            grads = tape.gradient(loss, vars_)
            opt.apply_gradients(zip(grads[:2], vars_[:2]))
            if kind == "proxy_anchor":
                popt.apply_gradients(zip(grads[2:], vars_[2:]))
            return loss

        rng = np.random.default_rng(0)
        t = time.time()
        for _ in range(1500):
            step(tf.constant(rng.choice(len(fit), args.batch_size, replace=False), tf.int32))
        norm = lambda a: (lambda e: e / np.linalg.norm(e, axis=1, keepdims=True))(head(a).numpy())
        results[kind] = _summary(evaluate_embeddings(norm(x_fit), fit, norm(x_val), val, 10, "none"))
        results[kind]["train_seconds"] = round(time.time() - t, 1)
    print(json.dumps({"fit": len(fit), "validation": len(val), "size": args.size, "results": results}, indent=2))


def refit_head(args):
    """Stage 2: re-fit Dense(dim) (+ proxies) on pooled features of the fine-tuned backbone.

    Training with augmented views only leaves the head tuned to augmented photos while the
    catalogue is clean; this stage fits the head on one clean letterboxed view and one augmented
    view of every training product. The choice (re-fitted head or original head) is made on an
    inner validation split of the training side (never the hold-out); then the head is re-fitted on
    the whole training side and saved to ``--out`` with its ``.json``.
    """
    import keras
    import tensorflow as tf
    from PIL import Image

    from ml.embed import _letterbox_batch, build_embedding_model
    from ml.evaluation.retrieval import evaluate_embeddings
    from ml.loading import CompiledModel
    from ml.product_photos import augment_like_a_crop, is_held_out, read_styles, split_ids

    log_path = Path(str(args.out) + ".log")
    meta = json.loads(Path(str(args.refit_head) + ".json").read_text())
    size, dim = int(meta["input_size"]), int(meta["dim"])
    model = build_embedding_model(dim, size, backbone_weights=None)
    model.load_weights(args.refit_head)
    run = CompiledModel(keras.Model(model.input, model.get_layer("embedding_pool").output), size).run
    dense = model.get_layer("embedding_projection")

    train_side, _ = split_ids(read_styles(args.styles, args.images))
    if args.limit:
        train_side = train_side[: args.limit]
    cache = Path(str(args.out) + ".refit-features.npz")
    if cache.exists():
        with np.load(cache) as d:
            clean, augmented = d["clean"], d["augmented"]
    else:
        rng = np.random.default_rng(args.seed)
        clean_rows, aug_rows = [], []
        from tqdm import tqdm

        for s in tqdm(range(0, len(train_side), 64), desc="features", mininterval=30):
            photos = [Image.open(p.image_path).convert("RGB") for p in train_side[s:s + 64]]
            clean_rows.append(run(_letterbox_batch(photos, size)).numpy())
            aug_rows.append(run(np.stack([np.asarray(augment_like_a_crop(im, rng, size), np.float32) for im in photos])).numpy())
        clean, augmented = np.concatenate(clean_rows), np.concatenate(aug_rows)
        np.savez(cache, clean=clean, augmented=augmented)
    in_val = np.array([is_held_out(p.id, 0.2, seed="embedder-loss-study") for p in train_side])

    def fit(rows):
        products = [train_side[i] for i in rows]
        labels = LabelSets(products)
        head = keras.layers.Dense(dim)
        head.build((None, clean.shape[1]))
        head.set_weights(dense.get_weights())
        proxies = [tf.Variable(np.random.default_rng(0).normal(size=(len(labels.vocab[n]), dim)).astype("float32"))
                   for n in LabelSets.NAMES]
        opt, popt = keras.optimizers.Adam(3e-4), keras.optimizers.Adam(1e-2)
        x = tf.constant(np.concatenate([clean[rows], augmented[rows]]))
        codes = [tf.constant(np.concatenate([labels.codes[n], labels.codes[n]])) for n in LabelSets.NAMES]

        @tf.function
        def step(idx):
            with tf.GradientTape() as tape:
                emb = tf.math.l2_normalize(head(tf.gather(x, idx)), axis=1)
                loss = combined_loss("proxy_anchor", emb, [tf.gather(c, idx) for c in codes], proxies, args.colour_weight)
            grads = tape.gradient(loss, head.trainable_variables + proxies)
            opt.apply_gradients(zip(grads[:2], head.trainable_variables))
            popt.apply_gradients(zip(grads[2:], proxies))
            return loss

        rng = np.random.default_rng(0)
        for _ in range(args.refit_steps):
            step(tf.constant(rng.choice(len(rows) * 2, args.batch_size, replace=False), tf.int32))
        return head

    def project(weights, feats):
        e = feats @ weights[0] + weights[1]
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    fit_rows, val_rows = np.where(~in_val)[0], np.where(in_val)[0]
    fit_p, val_p = [train_side[i] for i in fit_rows], [train_side[i] for i in val_rows]
    report = {}
    for name, weights in (("original_head", dense.get_weights()), ("refit_head", fit(fit_rows).get_weights())):
        m = evaluate_embeddings(project(weights, clean[fit_rows]), fit_p, project(weights, clean[val_rows]), val_p, 10, "none")
        report[name] = _summary(m)
    better = report["refit_head"]["articleType_all10"] + report["refit_head"]["gender+articleType_all10"] > \
        report["original_head"]["articleType_all10"] + report["original_head"]["gender+articleType_all10"]
    if better:
        dense.set_weights(fit(np.arange(len(train_side))).get_weights())
    model.save_weights(args.out)
    Path(str(args.out) + ".json").write_text(json.dumps({**meta, "version": args.version, "head": "refit" if better else "original"}, indent=1))
    _log(log_path, {"event": "refit_head", "inner_validation": report, "chosen": "refit" if better else "original",
                    "fit": len(fit_rows), "validation": len(val_rows), "from": str(args.refit_head), "weights": str(args.out)})


def _summary(m):
    f = m["frequent_article_types"]
    return {"articleType_p@10": f["articleType"]["precision@10"], "articleType_all10": f["articleType"]["tol0"],
            "gender+articleType_all10": f["gender+articleType"]["tol0"], "baseColour_p@10": f["baseColour"]["precision@10"]}


def main(argv=None):
    args = parse_args(argv)
    if args.study:
        study(args)
    elif args.refit_head:
        refit_head(args)
    else:
        train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
