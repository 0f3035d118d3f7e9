"""Train the article detector on the street photos: ``python -m ml.train_detector --data DIR --out RUN_DIR``.

Boxes come from the masks (``ml.detection_data``); the fixed 15% validation split is never trained
on. Augmentation (in the tf.data graph): scale jitter with random placement (zoom in and out,
grey outside the photo), horizontal flips, brightness/contrast/saturation/hue jitter.

The run directory gets, after every epoch: ``last.weights.h5`` + ``last.optimizer.npz`` +
``state.json`` (``--resume`` continues from them, learning-rate schedule included),
``detector.weights.h5`` + ``detector.json`` (the best validation mAP50 so far, the pair that
``ml.detect.ArticleDetector(weights=...)`` loads), and ``train.log`` (one JSON line per epoch).

Fine-tuning and extra samples (all optional):

* ``--init-from W.weights.h5`` starts from earlier detector weights (e.g. the committed ones)
  instead of ImageNet; the head priors are then left as they are.
* ``--crops-per-photo K`` adds K garment close-ups per training photo: a crop around one box (a
  category drawn uniformly among the photo's, then one of its boxes) with a random margin of 5-60 %
  of the box on each side; the crop's boxes are the photo's boxes clipped to it, kept when at least
  40 % of a box is inside. A visitor's close-up of one shoe, bag or shirt then looks like training data.
* ``--pseudo-labels JSON --tagged DIR`` adds the tag-only street photos with the boxes of
  ``python -m ml.pseudo_labels`` (top/bottom/dress: the most confident box only, as the mask boxes
  have one per photo; footwear/bag: up to two).
* ``--oversample dress=2,bag=2`` draws samples holding those classes that many times as often.
* ``--freeze-layers REGEX`` keeps more layers frozen. Fine-tuning the committed weights needs
  ``'^neck_P5_'``: their stride-32 backbone output (``features_18_relu6``) is constant (dead ReLU6
  channels), so ``neck_P5_bn`` sees a constant input; in training mode it subtracts the batch mean and
  gets no gradient, while Adam turns the conv's noise gradients into full-size steps — the constant
  drifts, the moving mean lags and, divided by sqrt(moving variance ~ 0 + eps), the inference-mode
  output is off by tens of standard deviations: validation mAP fell to 0.00 after 260 steps.

The validation split is never among the sources: crops are cut from training photos only, and the
tagged photos are a different set.
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


def _canvas_boxes(boxes, classes, region, scale, pad_x, pad_y, store_size, min_visible=0.4):
    """Photo-normalised boxes -> canvas-normalised boxes of a region (x1, y1, x2, y2 in photo pixels)
    letterboxed with (scale, pad_x, pad_y); boxes less than min_visible inside the region are dropped."""
    height, width = store_size
    rx1, ry1, rx2, ry2 = region
    out_boxes, out_classes = [], []
    for (x1, y1, x2, y2), cls in zip(boxes, classes):
        cx1, cy1, cx2, cy2 = max(x1, rx1), max(y1, ry1), min(x2, rx2), min(y2, ry2)
        area = max(x2 - x1, 0) * max(y2 - y1, 0)
        visible = max(cx2 - cx1, 0) * max(cy2 - cy1, 0)
        if area <= 0 or visible < min_visible * area:
            continue
        out_boxes.append([((cx1 - rx1) * scale + pad_x) / width, ((cy1 - ry1) * scale + pad_y) / height,
                          ((cx2 - rx1) * scale + pad_x) / width, ((cy2 - ry1) * scale + pad_y) / height])
        out_classes.append(cls)
    return out_boxes[:MAX_BOXES], out_classes[:MAX_BOXES]


def closeup_region(box, photo_w, photo_h, rng, margin=(0.05, 0.6)):
    """A crop (photo pixels) around one normalised box with a random margin per side."""
    x1, y1, x2, y2 = box[0] * photo_w, box[1] * photo_h, box[2] * photo_w, box[3] * photo_h
    bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    m = rng.uniform(*margin, size=4)
    return (max(0.0, x1 - m[0] * bw), max(0.0, y1 - m[1] * bh),
            min(float(photo_w), x2 + m[2] * bw), min(float(photo_h), y2 + m[3] * bh))


def extra_samples(sources, store_size, crops_per_photo=0, seed=0):
    """Letterboxed samples from (photo path, photo-normalised boxes, classes, whole) sources: the whole
    photo when ``whole``, plus ``crops_per_photo`` garment close-ups. Returns images, boxes, classes."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed + 1)
    images, all_boxes, all_classes = [], [], []
    for path, boxes, classes, whole in tqdm(sources, desc="extra samples", unit="photo"):
        with Image.open(path) as photo:
            photo = photo.convert("RGB")
        pw, ph = photo.width, photo.height
        pixel_boxes = [(b[0] * pw, b[1] * ph, b[2] * pw, b[3] * ph) for b in boxes]
        regions = [(0.0, 0.0, float(pw), float(ph))] if whole else []
        present = sorted(set(classes))
        for _ in range(crops_per_photo if present else 0):
            cls = present[rng.integers(len(present))]
            candidates = [b for b, c in zip(boxes, classes) if c == cls]
            regions.append(closeup_region(candidates[rng.integers(len(candidates))], pw, ph, rng))
        for region in regions:
            crop = photo.crop(tuple(int(round(v)) for v in region))
            canvas, scale, pad_x, pad_y = letterbox(crop, store_size)
            exact = (round(region[0]), round(region[1]), round(region[2]), round(region[3]))
            b, c = _canvas_boxes(pixel_boxes, classes, exact, scale, pad_x, pad_y, store_size)
            if not c:
                continue
            row_boxes = np.full((MAX_BOXES, 4), -1.0, dtype=np.float32)
            row_classes = np.full((MAX_BOXES,), -1.0, dtype=np.float32)
            row_boxes[: len(b)] = b
            row_classes[: len(c)] = c
            images.append(canvas.astype(np.uint8))
            all_boxes.append(row_boxes)
            all_classes.append(row_classes)
    height, width = store_size
    if not images:
        return (np.zeros((0, height, width, 3), np.uint8), np.zeros((0, MAX_BOXES, 4), np.float32),
                np.zeros((0, MAX_BOXES), np.float32))
    return np.stack(images), np.stack(all_boxes), np.stack(all_classes)


def load_pseudo_labels(path: Path, tagged_dir: Path):
    """Sources for ``extra_samples`` from ``ml.pseudo_labels`` output (one box per photo for
    top/bottom/dress, the most confident, which comes first; up to two for footwear and bag)."""
    photos = json.loads(Path(path).read_text())["photos"]
    sources = []
    for name, entry in sorted(photos.items()):
        boxes, classes, count = [], [], {}
        for box, cls in zip(entry["boxes"], entry["classes"]):
            limit = 2 if CATEGORIES[cls] in ("footwear", "bag") else 1
            if count.get(cls, 0) < limit:
                boxes.append(tuple(box))
                classes.append(cls)
                count[cls] = count.get(cls, 0) + 1
        if classes:
            sources.append((tagged_dir / "photos" / f"{name}.jpg", boxes, classes, True))
    return sources


def sample_weights(gt_classes, oversample: dict[int, int]) -> np.ndarray:
    """How many times each sample is drawn per pass: the largest factor among the classes it holds."""
    weights = np.ones(len(gt_classes), dtype=np.int64)
    for cls, factor in oversample.items():
        weights = np.where((gt_classes == cls).any(axis=1), np.maximum(weights, factor), weights)
    return weights


def make_dataset(images, gt_boxes, gt_classes, image_size, batch_size, seed, zoom=(0.65, 1.5), weights=None):
    """Infinite shuffled, augmented tf.data pipeline of (images 0..255, {"boxes", "classes"}).

    ``weights`` (ints, one per sample): how many times a sample appears per pass (oversampling)."""
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

    if weights is None:
        ds = tf.data.Dataset.from_tensor_slices((images, gt_boxes, gt_classes))
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).repeat()
    else:
        # Index the arrays (held once) so oversampled samples are not copied.
        indices = np.repeat(np.arange(len(images)), np.asarray(weights, dtype=np.int64))
        images_t, boxes_t, classes_t = tf.constant(images), tf.constant(gt_boxes), tf.constant(gt_classes)
        ds = tf.data.Dataset.from_tensor_slices(indices)
        ds = ds.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True).repeat()
        ds = ds.map(lambda i: (tf.gather(images_t, i), tf.gather(boxes_t, i), tf.gather(classes_t, i)))
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
    parser.add_argument("--init-from", type=Path, default=None,
                        help="start from these detector weights (*.weights.h5, same image size) instead of ImageNet")
    parser.add_argument("--crops-per-photo", type=int, default=0,
                        help="garment close-ups cut from each training photo (and pseudo-labelled photo)")
    parser.add_argument("--pseudo-labels", type=Path, default=None, help="JSON of python -m ml.pseudo_labels")
    parser.add_argument("--tagged", type=Path, default=None, help="street_tagged dir the pseudo labels refer to")
    parser.add_argument("--freeze-layers", default="",
                        help="regex of further layer names to keep frozen, e.g. '^neck_P5_' (see above)")
    parser.add_argument("--oversample", default="", help="e.g. dress=2,bag=2: draw samples with these classes N times")
    args = parser.parse_args(argv)
    if args.pseudo_labels and not args.tagged:
        parser.error("--pseudo-labels needs --tagged")
    oversample = {}
    for item in filter(None, args.oversample.split(",")):
        name, _, factor = item.partition("=")
        if name not in CATEGORIES or not factor.isdigit():
            parser.error(f"--oversample: {item!r} is not CATEGORY=N with CATEGORY in {CATEGORIES}")
        oversample[CATEGORIES.index(name)] = int(factor)

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
    sources = []
    if args.crops_per_photo:
        sources += [(args.data / "photos" / f"{n}.jpg", boxes[n].boxes, boxes[n].classes, False) for n in train_names]
    if args.pseudo_labels:
        sources += load_pseudo_labels(args.pseudo_labels, args.tagged)
    counts = {"street": len(images)}
    if sources:
        more = extra_samples(sources, store_size, args.crops_per_photo, args.seed)
        counts["extra"] = len(more[0])
        images, gt_boxes, gt_classes = (np.concatenate([a, b]) for a, b in zip((images, gt_boxes, gt_classes), more))
    weights = sample_weights(gt_classes, oversample) if oversample else None
    per_pass = int(weights.sum()) if weights is not None else len(images)
    dataset = make_dataset(images, gt_boxes, gt_classes, image_size, args.batch, args.seed, weights=weights)
    steps = args.steps_per_epoch or max(1, per_pass // args.batch)

    model = build_detector(image_size, backbone_weights=None if args.init_from else "imagenet", fpn_depth=1)
    if args.init_from:
        model.load_weights(str(args.init_from))
    else:
        init_head_priors(model, image_size)
    for layer in model.mobilenet.layers:
        block = re.match(r"features_(\d+)_", layer.name)
        if block and int(block.group(1)) < args.freeze_blocks:
            layer.trainable = False
        if args.freeze_backbone_bn and isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    if args.freeze_layers:
        for layer in model.backbone.layers + model.layers:
            if re.search(args.freeze_layers, layer.name):
                layer.trainable = False
    schedule = WarmupCosine(args.lr, args.warmup_steps, args.epochs * steps)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=5e-4, global_clipnorm=10.0)
    model.compile(optimizer=optimizer, classification_loss="binary_crossentropy", box_loss="ciou")

    config = {"image_size": list(image_size), "fpn_depth": 1, "categories": list(CATEGORIES),
              "backbone": "ml.backbone.mobilenet_v2 (torchvision ImageNet weights)",
              "feature_layers": "see ml.detect.FEATURE_LAYERS", "train_photos": len(train_names),
              "val_photos": len(val_names), "data": str(args.data), "argv": sys.argv[1:],
              "train_names_sha256": names_digest(train_names),
              "init_from": str(args.init_from) if args.init_from else None, "samples": counts}
    state = {"epoch": 0, "best_map50": -1.0, "best_epoch": 0}
    if args.resume and (out / "state.json").exists():
        state = json.loads((out / "state.json").read_text())
        model.load_weights(str(out / "last.weights.h5"))
        load_optimizer(optimizer, model, out / "last.optimizer.npz")
        print(f"resumed from epoch {state['epoch']} (step {int(optimizer.iterations.numpy())})", flush=True)
    log_line(log_path, {"event": "start", "image_size": image_size, "train": len(train_names),
                        "samples": counts, "samples_per_pass": per_pass,
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
