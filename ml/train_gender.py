"""Train the gender classifier: ``python -m ml.train_gender --styles CSV --images DIR --out PATH``.

Cheap on a CPU: the ImageNet MobileNetV2 stays frozen, its pooled features are computed once per
catalogue photo (and its mirror image), and only a small MLP head is trained on them. The written
weights file holds the whole model (backbone + head) so the app needs nothing else; a JSON sidecar
(``PATH.json``) records version, data and hold-out accuracy.

The hold-out (fixed 20 % of the Men/Women product ids, seed 2026) is never used for training or
model selection; ``python -m ml.evaluate gender`` measures on it.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

SPLIT_SEED = 2026
HOLDOUT_FRACTION = 0.2


def catalogue_split(styles: Path, images: Path):
    """(train, holdout): lists of (product id, label index, image path) for Men/Women products.

    The split is a fixed function of the product ids: sorted ids, a permutation with seed
    ``SPLIT_SEED``, the first 20 % held out.
    """
    from ml.gender import LABELS

    if not Path(styles).is_file():
        raise SystemExit(f"--styles: no such file: {styles}")
    if not Path(images).is_dir():
        raise SystemExit(f"--images: not a directory: {images}")
    rows = []
    with open(styles, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get("gender") in LABELS:
                path = Path(images) / f"{row['id']}.jpg"
                if path.is_file():
                    rows.append((int(row["id"]), LABELS.index(row["gender"]), path))
    rows.sort()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(rows))
    n_holdout = int(round(HOLDOUT_FRACTION * len(rows)))
    holdout_idx = set(order[:n_holdout].tolist())
    train = [r for i, r in enumerate(rows) if i not in holdout_idx]
    holdout = [r for i, r in enumerate(rows) if i in holdout_idx]
    return train, holdout


def extract_features(paths, batch_size=32, flip=True, desc="features"):
    """Pooled ImageNet features (n, 1280) [and of the mirror images, (n, 1280)]."""
    import tensorflow as tf

    from ml.gender import INPUT_SIZE, build_feature_model, prepare
    from ml.images import load_image

    model = build_feature_model("imagenet")
    run = tf.function(lambda x: model(x, training=False),
                      input_signature=[tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 3), tf.float32)])
    plain, mirrored = [], []
    for start in tqdm(range(0, len(paths), batch_size), desc=desc, unit="batch"):
        batch = np.stack([prepare(load_image(p)) for p in paths[start:start + batch_size]])
        plain.append(np.asarray(run(batch)))
        if flip:
            mirrored.append(np.asarray(run(batch[:, :, ::-1].copy())))
    plain = np.concatenate(plain).astype(np.float32)
    mirrored = np.concatenate(mirrored).astype(np.float32) if flip else None
    return plain, mirrored


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ml.train_gender", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--styles", required=True, type=Path, help="catalogue styles.csv")
    parser.add_argument("--images", required=True, type=Path, help="directory of <id>.jpg photos")
    parser.add_argument("--out", required=True, type=Path, help="weights file to write (.weights.h5)")
    parser.add_argument("--features-cache", type=Path, default=None,
                        help="npz of pooled training features: reused if present, written if not")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--no-flip", action="store_true", help="do not add mirrored photos")
    args = parser.parse_args(argv)
    if not str(args.out).endswith(".weights.h5"):
        parser.error("--out must end with .weights.h5")

    import keras

    from ml.gender import LABELS, VERSION, build_gender_model, build_head

    started = time.time()
    train, holdout = catalogue_split(args.styles, args.images)
    ids = np.array([r[0] for r in train])
    labels = np.array([r[1] for r in train])
    print(f"train: {len(train)} photos ({np.bincount(labels).tolist()} Men/Women), "
          f"hold-out: {len(holdout)} (not used here)", file=sys.stderr)

    cache = args.features_cache
    if cache and cache.exists():
        data = np.load(cache)
        if not np.array_equal(data["ids"], ids):
            raise SystemExit(f"{cache}: cached ids do not match the training split; delete it")
        plain, mirrored = data["plain"], data["mirrored"] if "mirrored" in data.files else None
    else:
        plain, mirrored = extract_features([r[2] for r in train], flip=not args.no_flip)
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            extra = {"mirrored": mirrored} if mirrored is not None else {}
            np.savez(cache, ids=ids, plain=plain, **extra)

    # 10 % of the training ids (fixed) for early stopping; the hold-out stays untouched
    rng = np.random.default_rng(SPLIT_SEED + 1)
    val_mask = np.zeros(len(train), bool)
    val_mask[rng.permutation(len(train))[: len(train) // 10]] = True
    x_fit = [plain[~val_mask]]
    y_fit = [labels[~val_mask]]
    if mirrored is not None and not args.no_flip:
        x_fit.append(mirrored[~val_mask])
        y_fit.append(labels[~val_mask])
    x_fit, y_fit = np.concatenate(x_fit), np.concatenate(y_fit)
    x_val, y_val = plain[val_mask], labels[val_mask]

    keras.utils.set_random_seed(SPLIT_SEED)
    head = build_head(args.hidden)
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=12, restore_best_weights=True)
    history = head.fit(x_fit, y_fit, validation_data=(x_val, y_val), epochs=args.epochs,
                       batch_size=128, callbacks=[stop], verbose=2)
    val_accuracy = float(max(history.history["val_accuracy"]))

    model = build_gender_model(backbone_weights="imagenet", head=head)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(args.out)
    meta = {
        "version": VERSION,
        "labels": list(LABELS),
        "hidden": args.hidden,
        "input_size": 224,
        "train_photos": int(len(train)),
        "train_counts": dict(zip(LABELS, np.bincount(labels, minlength=2).tolist())),
        "holdout_photos": len(holdout),
        "mirrored_training_copies": mirrored is not None and not args.no_flip,
        "early_stopping_val_accuracy": round(val_accuracy, 4),
        "epochs_run": len(history.history["loss"]),
        "minutes": round((time.time() - started) / 60, 1),
        "command": "python -m ml.train_gender " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    Path(str(args.out) + ".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
