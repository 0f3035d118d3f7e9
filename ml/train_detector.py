"""Train the article detector on the street photos: ``python -m ml.train_detector --data DIR --out RUN_DIR``.

Boxes come from the masks (``ml.detection_data``); the fixed 15% validation split is never trained
on. Augmentation (in the tf.data graph): scale jitter with random placement (zoom in and out,
grey outside the photo), horizontal flips, brightness/contrast/saturation/hue jitter.

The run directory gets, after every epoch: ``last.weights.h5`` + ``last.optimizer.npz`` +
``state.json`` (``--resume`` continues from them, learning-rate schedule included),
``detector.weights.h5`` + ``detector.json`` (the best validation mAP50 so far, the pair that
``ml.detect.ArticleDetector(weights=...)`` loads), and ``train.log`` (one JSON line per epoch).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ml.detection_data import CATEGORIES, load_boxes, split
from ml.detect import PAD_VALUE, letterbox

MAX_BOXES = 12


def image_size_for(imgsz: int) -> tuple[int, int]:
    """Portrait canvas (height, width) for a given height: width = 2/3 height, multiples of 32."""
    height = int(round(imgsz / 32)) * 32
    width = int(round(height * 2 / 3 / 32)) * 32
    return height, width


def letterboxed_set(data_dir: Path, names, boxes, store_size):
    """Photos letterboxed to store_size (uint8 N,H,W,3), boxes in canvas-normalised xyxy (N,MAX,4), classes."""
    from tqdm import tqdm

    height, width = store_size
    images = np.zeros((len(names), height, width, 3), dtype=np.uint8)
    gt_boxes = np.full((len(names), MAX_BOXES, 4), -1.0, dtype=np.float32)
    gt_classes = np.full((len(names), MAX_BOXES), -1.0, dtype=np.float32)
    for i, name in enumerate(tqdm(names, desc="loading photos", unit="photo")):
        with Image.open(data_dir / "photos" / f"{name}.jpg") as photo:
            canvas, scale, pad_x, pad_y = letterbox(photo, store_size)
            photo_w, photo_h = photo.width, photo.height
        images[i] = canvas.astype(np.uint8)
        entry = boxes[name]
        for j, (box, cls) in enumerate(zip(entry.boxes[:MAX_BOXES], entry.classes[:MAX_BOXES])):
            x1, y1, x2, y2 = box
            gt_boxes[i, j] = [
                (x1 * photo_w * scale + pad_x) / width, (y1 * photo_h * scale + pad_y) / height,
                (x2 * photo_w * scale + pad_x) / width, (y2 * photo_h * scale + pad_y) / height,
            ]
            gt_classes[i, j] = cls
    return images, gt_boxes, gt_classes


def make_dataset(images, gt_boxes, gt_classes, image_size, batch_size, seed, zoom=(0.65, 1.5)):
    """Infinite shuffled, augmented tf.data pipeline of (images 0..255, {"boxes", "classes"})."""
    import tensorflow as tf

    height, width = image_size
    log_lo, log_hi = math.log(zoom[0]), math.log(zoom[1])

    def augment(image, boxes, classes):
        valid = classes >= 0
        # Scale jitter: a square window (in canvas-normalised units) of side 1/zoom, placed at random.
        z = tf.exp(tf.random.uniform((), log_lo, log_hi))
        side = 1.0 / z
        lo = tf.minimum(0.0, 1.0 - side)
        hi = tf.maximum(0.0, 1.0 - side)
        wy = tf.random.uniform((), lo, hi)
        wx = tf.random.uniform((), lo, hi)
        window = tf.stack([wy, wx, wy + side, wx + side])[None]
        image = tf.image.crop_and_resize(
            tf.cast(image, tf.float32)[None], window, [0], (height, width),
            extrapolation_value=float(PAD_VALUE))[0]
        moved = (boxes - tf.stack([wx, wy, wx, wy])) / side
        clipped = tf.clip_by_value(moved, 0.0, 1.0)
        area = lambda b: tf.maximum(b[:, 2] - b[:, 0], 0.0) * tf.maximum(b[:, 3] - b[:, 1], 0.0)
        keep = valid & (area(clipped) >= 0.4 * area(moved)) \
            & ((clipped[:, 2] - clipped[:, 0]) * width >= 3.0) & ((clipped[:, 3] - clipped[:, 1]) * height >= 3.0)
        # Horizontal flip.
        flip = tf.random.uniform(()) < 0.5
        image = tf.cond(flip, lambda: image[:, ::-1, :], lambda: image)
        clipped = tf.cond(
            flip,
            lambda: tf.stack([1.0 - clipped[:, 2], clipped[:, 1], 1.0 - clipped[:, 0], clipped[:, 3]], axis=-1),
            lambda: clipped,
        )
        # Colour.
        image = image / 255.0
        image = tf.image.adjust_brightness(image, tf.random.uniform((), -0.12, 0.12))
        image = tf.image.adjust_contrast(image, tf.random.uniform((), 0.75, 1.25))
        image = tf.image.adjust_saturation(tf.clip_by_value(image, 0.0, 1.0), tf.random.uniform((), 0.6, 1.4))
        image = tf.image.adjust_hue(image, tf.random.uniform((), -0.03, 0.03))
        image = tf.clip_by_value(image, 0.0, 1.0) * 255.0
        pixels = clipped * tf.constant([width, height, width, height], tf.float32)
        # Kept boxes first, the rest padded with -1.
        order = tf.argsort(tf.cast(~keep, tf.int32), stable=True)
        pixels = tf.gather(pixels, order)
        kept = tf.gather(keep, order)
        out_boxes = tf.where(kept[:, None], pixels, -1.0)
        out_classes = tf.where(kept, tf.gather(classes, order), -1.0)
        return image, {"boxes": out_boxes, "classes": out_classes}

    ds = tf.data.Dataset.from_tensor_slices((images, gt_boxes, gt_classes))
    ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.map(augment, num_parallel_calls=2, deterministic=False)
    return ds.batch(batch_size, drop_remainder=True).prefetch(2)


class WarmupCosine:
    """Linear warm-up then cosine decay to final_fraction * peak (a Keras LearningRateSchedule)."""

    def __new__(cls, peak, warmup_steps, total_steps, final_fraction=0.02):
        import keras

        class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
            def __call__(self, step):
                from keras import ops

                step = ops.cast(step, "float32")
                warm = peak * (step + 1.0) / float(max(1, warmup_steps))
                progress = ops.clip((step - warmup_steps) / float(max(1, total_steps - warmup_steps)), 0.0, 1.0)
                cosine = peak * (final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + ops.cos(math.pi * progress)))
                return ops.where(step < warmup_steps, warm, cosine)

            def get_config(self):
                return {"peak": peak, "warmup_steps": warmup_steps, "total_steps": total_steps}

        return _Schedule()


def save_optimizer(optimizer, path: Path):
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, *[v.numpy() for v in optimizer.variables])
    os.replace(tmp, path)


def load_optimizer(optimizer, model, path: Path):
    optimizer.build(model.trainable_variables)
    with np.load(path) as data:
        values = [data[f"arr_{i}"] for i in range(len(data.files))]
    if len(values) != len(optimizer.variables):
        raise ValueError(f"{path}: {len(values)} optimizer variables, expected {len(optimizer.variables)}")
    for var, value in zip(optimizer.variables, values):
        var.assign(value)


def save_weights(model, path: Path):
    tmp = path.with_name(path.name.replace(".weights.h5", ".tmp.weights.h5"))
    model.save_weights(str(tmp))
    os.replace(tmp, path)


def progress_callback(every: int = 10):
    """Prints step, mean loss and seconds per step every N steps (fit's verbose=2 prints only per epoch)."""
    import keras

    class _Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started, self.losses = time.time(), []

        def on_train_batch_end(self, batch, logs=None):
            self.losses.append(float((logs or {}).get("loss", float("nan"))))
            if (batch + 1) % every == 0:
                elapsed = time.time() - self.started
                print(f"  step {batch + 1}: loss {np.mean(self.losses[-every:]):.3f}, "
                      f"{elapsed / (batch + 1):.2f} s/step", flush=True)

    return _Progress()


def log_line(path: Path, record: dict):
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")
    print(json.dumps(record), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ml.train_detector", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="street data dir (photos/, masks/, labels.txt)")
    parser.add_argument("--out", required=True, type=Path, help="run directory (checkpoints, log, best weights)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=480, help="canvas height; width is 2/3 of it (portrait)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (AdamW)")
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--freeze-backbone-bn", action=argparse.BooleanOptionalAction, default=True,
                        help="keep the ImageNet batch-norm statistics of the backbone (small batches)")
    parser.add_argument("--freeze-blocks", type=int, default=7,
                        help="keep backbone blocks features_0 .. features_{N-1} frozen (stride <= 8 layers; 0: none)")
    parser.add_argument("--steps-per-epoch", type=int, default=0, help="default: one pass over the training photos")
    parser.add_argument("--eval-every", type=int, default=1, help="validation mAP every N epochs")
    parser.add_argument("--max-train-photos", type=int, default=0, help="for smoke tests")
    parser.add_argument("--max-val-photos", type=int, default=0, help="for smoke tests")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.*")
    parser.add_argument("--cache-dir", default="build")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    from ml.detect import build_detector, init_head_priors
    from ml.evaluation.detection import evaluate_model, names_digest

    keras.utils.set_random_seed(args.seed)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "train.log"
    image_size = image_size_for(args.imgsz)

    boxes = load_boxes(args.data, args.cache_dir)
    train_names, val_names = split(boxes)
    if args.max_train_photos:
        train_names = train_names[: args.max_train_photos]
    if args.max_val_photos:
        val_names = val_names[: args.max_val_photos]
    store_size = (int(image_size[0] * 1.25) // 2 * 2, int(image_size[1] * 1.25) // 2 * 2)
    images, gt_boxes, gt_classes = letterboxed_set(args.data, train_names, boxes, store_size)
    dataset = make_dataset(images, gt_boxes, gt_classes, image_size, args.batch, args.seed)
    steps = args.steps_per_epoch or max(1, len(train_names) // args.batch)

    model = build_detector(image_size, backbone_weights="imagenet", fpn_depth=1)
    init_head_priors(model, image_size)
    for layer in model.mobilenet.layers:
        block = re.match(r"features_(\d+)_", layer.name)
        if block and int(block.group(1)) < args.freeze_blocks:
            layer.trainable = False
        if args.freeze_backbone_bn and isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    schedule = WarmupCosine(args.lr, args.warmup_steps, args.epochs * steps)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=5e-4, global_clipnorm=10.0)
    model.compile(optimizer=optimizer, classification_loss="binary_crossentropy", box_loss="ciou")

    config = {"image_size": list(image_size), "fpn_depth": 1, "categories": list(CATEGORIES),
              "backbone": "ml.backbone.mobilenet_v2 (torchvision ImageNet weights)",
              "feature_layers": "see ml.detect.FEATURE_LAYERS", "train_photos": len(train_names),
              "val_photos": len(val_names), "data": str(args.data), "argv": sys.argv[1:],
              "train_names_sha256": names_digest(train_names)}
    state = {"epoch": 0, "best_map50": -1.0, "best_epoch": 0}
    if args.resume and (out / "state.json").exists():
        state = json.loads((out / "state.json").read_text())
        model.load_weights(str(out / "last.weights.h5"))
        load_optimizer(optimizer, model, out / "last.optimizer.npz")
        print(f"resumed from epoch {state['epoch']} (step {int(optimizer.iterations.numpy())})", flush=True)
    log_line(log_path, {"event": "start", "image_size": image_size, "train": len(train_names),
                        "val": len(val_names), "steps_per_epoch": steps, "epochs": args.epochs,
                        "from_epoch": state["epoch"], "argv": sys.argv[1:]})

    for epoch in range(state["epoch"] + 1, args.epochs + 1):
        started = time.time()
        print(f"epoch {epoch}/{args.epochs}: {steps} steps", flush=True)
        history = model.fit(dataset, epochs=epoch, initial_epoch=epoch - 1, steps_per_epoch=steps, verbose=2,
                            callbacks=[progress_callback()])
        losses = history.history["loss"]
        train_seconds = time.time() - started
        save_weights(model, out / "last.weights.h5")
        save_optimizer(optimizer, out / "last.optimizer.npz")
        record = {"epoch": epoch, "loss": round(float(np.mean(losses)), 4), "train_seconds": round(train_seconds, 1),
                  "lr": round(float(schedule(optimizer.iterations)), 7)}
        if epoch % args.eval_every == 0 or epoch == args.epochs:
            metrics = evaluate_model(model, image_size, args.data, val_names, boxes, progress=False)
            record.update({"val_map50": metrics["mAP50"], "val_map50_95": metrics["mAP50:95"],
                           "val_ap50": metrics["AP50"]})
            if metrics["mAP50"] > state["best_map50"]:
                state["best_map50"], state["best_epoch"] = metrics["mAP50"], epoch
                save_weights(model, out / "detector.weights.h5")
                (out / "detector.json").write_text(json.dumps(
                    {**config, "epoch": epoch, "val_mAP50": metrics["mAP50"],
                     "val_mAP50:95": metrics["mAP50:95"]}, indent=2))
        state["epoch"] = epoch
        (out / "state.json").write_text(json.dumps(state))
        log_line(log_path, record)
    log_line(log_path, {"event": "done", "best_map50": state["best_map50"], "best_epoch": state["best_epoch"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
