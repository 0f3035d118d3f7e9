"""Train the gender classifier: ``python -m ml.train_gender --styles CSV --images DIR --out PATH``.

Cheap on a CPU: the ImageNet MobileNetV2 runs once per catalogue photo (and its mirror image) and
its output is cached; then either

- ``--mode head`` (default): only a small MLP head is trained on the pooled 1280-d features, or
- ``--mode tail``: the last two backbone stages (``features_17``, ``features_18``, on cached 7×7×160
  maps of ``features_16``) are fine-tuned together with the head (BatchNorm statistics frozen).

The written weights file holds the whole model (backbone + head) so the app needs nothing else; a
JSON sidecar (``PATH.json``) records version, data and training figures.

The hold-out (fixed 20 % of the Men/Women product ids by a seeded hash of each id, see
``is_holdout``) is never used for training or model selection; ``python -m ml.evaluate gender``
measures on it.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

SPLIT_SEED = 2026
HOLDOUT_FRACTION = 0.2


def catalogue_split(styles: Path, images: Path):
    """(train, holdout): lists of (product id, label index, image path) for Men/Women products.

    The split is a fixed function of each product id alone (a seeded hash: an id is held out when
    ``sha256("2026:<id>")`` falls in the first 20 % of its range), so any subset of the catalogue
    (e.g. the committed demo data) has the same ids held out as the full catalogue.
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
    train = [r for r in rows if not is_holdout(r[0])]
    holdout = [r for r in rows if is_holdout(r[0])]
    return train, holdout


def is_holdout(product_id: int) -> bool:
    """Whether a catalogue id belongs to the fixed 20 % gender hold-out."""
    digest = hashlib.sha256(f"{SPLIT_SEED}:{int(product_id)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < HOLDOUT_FRACTION * 2**64


def cached_features(rows, cache: Path | None):
    """Pooled features (photo, mirror) of ``rows``, reusing and extending an npz cache keyed by id."""
    ids = np.array([r[0] for r in rows])
    known = {}
    if cache and cache.exists():
        data = np.load(cache)
        known = {int(i): k for k, i in enumerate(data["ids"])}
        c_plain, c_mirrored = data["plain"], data["mirrored"]
    missing = [r for r in rows if r[0] not in known]
    if missing:
        m_plain, m_mirrored = extract_features([r[2] for r in missing])
    plain = np.zeros((len(rows), m_plain.shape[1] if missing else c_plain.shape[1]), np.float32)
    mirrored = np.zeros_like(plain)
    fresh = {r[0]: k for k, r in enumerate(missing)}
    for k, pid in enumerate(ids):
        if pid in fresh:
            plain[k], mirrored[k] = m_plain[fresh[pid]], m_mirrored[fresh[pid]]
        else:
            plain[k], mirrored[k] = c_plain[known[pid]], c_mirrored[known[pid]]
    if cache and missing:
        all_ids = np.array(sorted(set(known) | set(fresh)))
        index = {int(i): k for k, i in enumerate(ids)}
        a_plain = np.stack([plain[index[i]] if i in index else c_plain[known[i]] for i in all_ids])
        a_mirrored = np.stack([mirrored[index[i]] if i in index else c_mirrored[known[i]] for i in all_ids])
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, ids=all_ids, plain=a_plain, mirrored=a_mirrored)
        os.replace(tmp, cache)
    return plain, mirrored


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
        batch = np.stack([prepare(p if hasattr(p, "size") else load_image(p))
                          for p in paths[start:start + batch_size]])
        plain.append(np.asarray(run(batch)))
        if flip:
            mirrored.append(np.asarray(run(batch[:, :, ::-1].copy())))
    plain = np.concatenate(plain).astype(np.float32)
    mirrored = np.concatenate(mirrored).astype(np.float32) if flip else None
    return plain, mirrored


WOMEN_CUES = {"dress", "skirt", "heels", "pumps", "wedges", "romper", "tights", "stockings"}
MEN_CUES = {"tie"}


def street_tagged_cues(directory: Path):
    """[(photo path, label index)] of tagged street photos with a gender cue in their tags.

    ``directory`` holds ``photos/`` and ``tags.csv`` (photo, tags separated by ``;``). Women cue:
    a dress, skirt, heels, pumps, wedges, romper, tights or stockings; Men cue: a tie and none of
    those. Photos without a cue are not used.
    """
    from ml.gender import LABELS

    tags_path = Path(directory) / "tags.csv"
    if not tags_path.is_file():
        raise SystemExit(f"--street-tagged: no tags.csv in {directory}")
    cues = []
    with tags_path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            tags = set(row["tags"].split(";"))
            photo = Path(directory) / "photos" / row["photo"]
            if not photo.is_file():
                continue
            if tags & WOMEN_CUES:
                cues.append((photo, LABELS.index("Women")))
            elif tags & MEN_CUES:
                cues.append((photo, LABELS.index("Men")))
    return sorted(cues)


FACE_TEACHER_MEN, FACE_TEACHER_WOMEN = 0.1, 0.9


def street_tagged_face_labels(directory: Path):
    """[(photo path, label index)] of every tagged street photo, labelled by its face where the face is sure.

    The face classifier (``ml.face_gender``, on the pose landmarks) is the teacher: P(Women) ≤ 0.1 → Men,
    ≥ 0.9 → Women. A photo whose face is unsure or unseen keeps its garment cue (``street_tagged_cues``); a
    garment cue the face contradicts (a man in a kilt, or a Women-cue photo of a man) and a photo with
    neither are left out. This gives the body classifier street photos of men, which the cues alone hardly
    have (17 ties against 679 Women cues)."""
    from ml.face_gender import FaceGender
    from ml.gender import LABELS
    from ml.images import load_image
    from ml.pose import PoseGate

    cues = dict(street_tagged_cues(directory))
    gate, face = PoseGate(quick_reject=False), FaceGender()
    labelled = []
    for photo in tqdm(sorted((Path(directory) / "photos").glob("*.jpg")), desc="face teacher", unit="photo"):
        image = load_image(photo)
        keypoints = gate.check(image).keypoints
        found = face.p_women(image, keypoints) if keypoints else None
        said = None
        if found is not None and found[0] <= FACE_TEACHER_MEN:
            said = LABELS.index("Men")
        elif found is not None and found[0] >= FACE_TEACHER_WOMEN:
            said = LABELS.index("Women")
        cue = cues.get(photo)
        if said is not None and (cue is None or cue == said):
            labelled.append((photo, said))
        elif said is None and cue is not None:
            labelled.append((photo, cue))
    return labelled


def street_features(cues, batch_size=32):
    """Pooled features of the upper-body crops (photo, mirror) of street photos, as the app sees them."""
    from ml.gender import upper_body_crop
    from ml.images import load_image
    from ml.pose import PoseGate

    gate = PoseGate(quick_reject=False)  # the upper-body crop needs the landmarks of every photo
    crops, labels, photos = [], [], []
    for photo, label in tqdm(cues, desc="street crops", unit="photo"):
        image = load_image(photo)
        crop = upper_body_crop(image, gate.check(image).keypoints)
        if crop is not None:
            crops.append(crop)
            labels.append(label)
            photos.append(Path(photo).name)
    plain, mirrored = extract_features(crops, batch_size=batch_size, desc="street features")
    return plain, mirrored, np.asarray(labels), np.asarray(photos)


def street_fold(photo, folds: int = 2) -> int:
    """The cross-fitting fold of a street photo (a seeded hash of its file name)."""
    digest = hashlib.sha256(f"{SPLIT_SEED}:street:{Path(photo).name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % folds


def cross_fitted_fusion(fit_head, s_photos, street_tagged, folds: int = 2, meta=None):
    """Face + body fusion parameters (``ml.face_gender.calibrate``) calibrated on body predictions the body
    never trained on: for each fold of the tagged street photos, a head fitted without that fold's photos
    (``fit_head(mask over the street crops) -> head``) predicts them; the fused records of all folds are
    calibrated together on the photos' garment cues, as ``python -m ml.face_gender`` does for a body that
    saw no street photo."""
    import tempfile

    from ml.face_gender import calibrate, recalls, street_records
    from ml.gender import GenderClassifier, build_gender_model
    from ml.pose import PoseGate

    cues = street_tagged_cues(street_tagged)
    crop_folds = np.array([street_fold(p, folds) for p in s_photos])
    gate = PoseGate()  # as the app: landmarks only for full shots
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for fold in range(folds):
            head = fit_head(crop_folds != fold)
            path = Path(tmp) / f"fold{fold}.weights.h5"
            build_gender_model(backbone_weights="imagenet", head=head).save_weights(path)
            Path(str(path) + ".json").write_text(json.dumps(meta or {}))
            held = [(photo, label) for photo, label in cues if street_fold(photo, folds) == fold]
            parts.append(street_records(held, classifier=GenderClassifier(path, face=False), gate=gate,
                                        desc=f"fold {fold} records"))
    records = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    params, figures = calibrate(records)
    return {**params, "calibration": figures, "calibration_body_only": recalls(records, 0.0, 0.0, 1.0, 1e9, 0.0),
            "cross_fitted_folds": folds}


def calibrate_full_shot_offset(head, plain, mirrored, labels):
    """The logit offset (towards Women) for full-shot crops that maximises balanced accuracy on
    the cue-labelled street crops; ties go to the offset closest to 0. Returns (offset, figures)."""
    p_women = (np.asarray(head(plain))[:, 1] + np.asarray(head(mirrored))[:, 1]) / 2
    p_women = np.clip(p_women, 1e-7, 1 - 1e-7)
    logits = np.log(p_women / (1 - p_women))
    best = None
    for offset in np.arange(-2.0, 8.0001, 0.25):
        said_women = logits + offset > 0
        women = float(said_women[labels == 1].mean()) if (labels == 1).any() else 0.0
        men = float((~said_women[labels == 0]).mean()) if (labels == 0).any() else 0.0
        key = (round((women + men) / 2, 6), -abs(offset))
        if best is None or key > best[0]:
            best = (key, float(offset), {"women_recall": round(women, 4), "men_recall": round(men, 4),
                                          "balanced_accuracy": round((women + men) / 2, 4),
                                          "photos": int(len(labels))})
    return best[1], best[2]


TAIL_INPUT_LAYER = "features_16_add"
TAIL_FIRST_LAYER = "features_17_conv_0_0"


def extract_maps(paths, batch_size=32, desc="features_16 maps"):
    """Cached inputs of the tail: ``features_16_add`` maps (n, 7, 7, 160) of photos and mirrors (float16)."""
    import keras
    import tensorflow as tf

    from ml.gender import INPUT_SIZE, build_feature_model, prepare
    from ml.images import load_image

    full = build_feature_model("imagenet")
    trunk = keras.Model(full.input, full.get_layer(TAIL_INPUT_LAYER).output)
    run = tf.function(lambda x: trunk(x, training=False),
                      input_signature=[tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 3), tf.float32)])
    plain, mirrored = [], []
    for start in tqdm(range(0, len(paths), batch_size), desc=desc, unit="batch"):
        batch = np.stack([prepare(load_image(p)) for p in paths[start:start + batch_size]])
        plain.append(np.asarray(run(batch)).astype(np.float16))
        mirrored.append(np.asarray(run(batch[:, :, ::-1].copy())).astype(np.float16))
    return np.concatenate(plain), np.concatenate(mirrored)


def build_tail_model(full_model, head):
    """(7, 7, 160) maps → features_17 … features_18 → pooling → head, sharing ``full_model``'s layers."""
    import keras

    layers = full_model.layers
    names = [layer.name for layer in layers]
    start, stop = names.index(TAIL_FIRST_LAYER), names.index("gender_pool")
    inputs = keras.Input((7, 7, 160), name="features_16_maps")
    x = inputs
    for layer in layers[start:stop + 1]:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # keep ImageNet statistics: inference-mode BatchNorm
        x = layer(x)
    return keras.Model(inputs, head(x), name="gender_tail")


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
    parser.add_argument("--mode", choices=("head", "tail"), default="head",
                        help="head: train the MLP head only; tail: also fine-tune features_17-18")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="Adam learning rate (default 1e-3 for head, 2e-4 for tail)")
    parser.add_argument("--street-tagged", type=Path, default=None,
                        help="street photos with tags (photos/, tags.csv): the upper-body crops of those "
                             "with a gender cue calibrate the full-shot logit offset (see ml.gender)")
    parser.add_argument("--street-train", action="store_true",
                        help="also train on those crops (tried: the street set is 97%% Women, so the "
                             "head learns 'street photo = Women'; off by default)")
    parser.add_argument("--street-labels", choices=("cues", "face"), default="cues",
                        help="labels of the street crops: cues (garment cues only: dress → Women, tie → Men) or face "
                             "(the face classifier where it is sure, else the cue; see street_tagged_face_labels)")
    parser.add_argument("--street-weight", type=float, default=1.0,
                        help="weight of each street crop in the loss (a catalogue photo weighs 1)")
    parser.add_argument("--keep-head", type=Path, default=None, metavar="WEIGHTS",
                        help="keep the head of an earlier gender model (frozen) and pair it with the new one: the model "
                             "averages both heads' logits on one backbone pass (ml.gender.pair_head); its full-shot "
                             "offset is half the kept model's")
    parser.add_argument("--calibrate-fusion", action="store_true",
                        help="with --street-train: calibrate the face + body fusion on cross-fitted body predictions "
                             "of the cue-labelled street photos and store it with the weights (see cross_fitted_fusion)")
    parser.add_argument("--version", default=None, help="version of the written model (default: ml.gender.VERSION)")
    parser.add_argument("--street-balance", action="store_true",
                        help="weight the street crops so both genders weigh the same (few Men cues)")
    parser.add_argument("--street-cache", type=Path, default=None,
                        help="npz of the street crops' features: reused if present, written if not")
    args = parser.parse_args(argv)
    if not str(args.out).endswith(".weights.h5"):
        parser.error("--out must end with .weights.h5")

    import keras

    from ml.gender import LABELS, build_gender_model, build_head, pair_head

    started = time.time()
    train, holdout = catalogue_split(args.styles, args.images)
    ids = np.array([r[0] for r in train])
    labels = np.array([r[1] for r in train])
    print(f"train: {len(train)} photos ({np.bincount(labels).tolist()} Men/Women), "
          f"hold-out: {len(holdout)} (not used here)", file=sys.stderr)

    if args.mode == "tail":
        return _train_tail(args, argv, train, ids, labels, started)

    plain, mirrored = cached_features(train, args.features_cache)

    # 10 % of the training ids (fixed) for early stopping; the hold-out stays untouched
    val_mask = _early_stopping_split(len(train))
    x_fit = [plain[~val_mask]]
    y_fit = [labels[~val_mask]]
    if mirrored is not None and not args.no_flip:
        x_fit.append(mirrored[~val_mask])
        y_fit.append(labels[~val_mask])
    street_counts = None
    s_plain = None
    if args.street_tagged:
        cache = args.street_cache
        cached = np.load(cache) if cache and cache.exists() else {}
        if "photos" in cached and str(cached.get("source", "cues")) == args.street_labels:  # same crops, same labels
            data = cached
            s_plain, s_mirrored, s_labels, s_photos = data["plain"], data["mirrored"], data["labels"], data["photos"]
        else:
            tagged = (street_tagged_face_labels(args.street_tagged) if args.street_labels == "face"
                      else street_tagged_cues(args.street_tagged))
            s_plain, s_mirrored, s_labels, s_photos = street_features(tagged)
            if cache:
                np.savez(cache, plain=s_plain, mirrored=s_mirrored, labels=s_labels, photos=s_photos,
                         source=np.array(args.street_labels))
        street_counts = dict(zip(LABELS, np.bincount(s_labels, minlength=2).tolist()))
        print(f"street crops: {street_counts}", file=sys.stderr)
    kept, kept_offset = None, 0.0
    if args.keep_head:  # its head stays as it is, paired with each head fitted below
        kept_meta = json.loads(Path(str(args.keep_head) + ".json").read_text())
        earlier = build_gender_model(backbone_weights=None, hidden=int(kept_meta.get("hidden", 256)))
        earlier.load_weights(args.keep_head)
        kept = earlier.get_layer("gender_head")
        kept.trainable = False
        kept_offset = float(kept_meta.get("full_shot_logit_offset", 0.0))
    heads = 1 if kept is None else 2

    def fit_head(street_mask=None):
        """The head fitted on the catalogue's fitting ids (+ the street crops of ``street_mask``, all by default)."""
        xs, ys, ws = list(x_fit), list(y_fit), [np.ones(len(y)) for y in y_fit]
        x_val, y_val = plain[val_mask], labels[val_mask]
        if args.street_tagged and args.street_train:
            s_val = _early_stopping_split(len(s_labels))
            use = ~s_val if street_mask is None else ~s_val & street_mask
            counts = np.bincount(s_labels[use], minlength=2).astype(float)
            class_weight = (counts.sum() / (2 * np.maximum(counts, 1)) if args.street_balance
                            else np.ones(2))
            xs += [s_plain[use], s_mirrored[use]]
            ys += [s_labels[use], s_labels[use]]
            ws += [args.street_weight * class_weight[s_labels[use]]] * 2
            val = s_val if street_mask is None else s_val & street_mask
            x_val = np.concatenate([x_val, s_plain[val]])
            y_val = np.concatenate([y_val, s_labels[val]])
        keras.utils.set_random_seed(SPLIT_SEED)
        head = build_head(args.hidden, name="street_head" if kept is not None else "gender_head")
        head.compile(optimizer=keras.optimizers.Adam(args.learning_rate or 1e-3),
                     loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=12, restore_best_weights=True)
        head.history_ = head.fit(np.concatenate(xs), np.concatenate(ys), sample_weight=np.concatenate(ws),
                                 validation_data=(x_val, y_val), epochs=args.epochs, batch_size=128,
                                 callbacks=[stop], verbose=2)
        if kept is not None:
            history_ = head.history_
            head = pair_head(kept, head)
            head.history_ = history_
        return head

    head = fit_head()
    history = head.history_
    val_accuracy = float(max(history.history["val_accuracy"]))

    offset, calibration = 0.0, None
    if kept is not None:  # the kept head's offset, halved by the mean of the two heads' logits
        offset = kept_offset / 2
    elif s_plain is not None and not args.street_train:  # street-trained: its crops are training data, no offset
        offset, calibration = calibrate_full_shot_offset(head, s_plain, s_mirrored, s_labels)
        print(f"full-shot logit offset {offset:+.2f}: {calibration}", file=sys.stderr)

    fusion = None
    if args.calibrate_fusion:
        if not (args.street_tagged and args.street_train):
            raise SystemExit("--calibrate-fusion needs --street-tagged and --street-train")
        fusion = cross_fitted_fusion(fit_head, s_photos, args.street_tagged,
                                     meta={"heads": heads, "hidden": args.hidden, "full_shot_logit_offset": offset})
        print(f"face fusion (cross-fitted): {fusion}", file=sys.stderr)

    model = build_gender_model(backbone_weights="imagenet", head=head)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(args.out)
    _write_record(args, argv, started, train, labels, history, val_accuracy,
                  mode="head (frozen ImageNet backbone)", face_fusion=fusion,
                  heads=heads,
                  kept_head=str(args.keep_head) if kept is not None else None,
                  street_tagged_crops=street_counts,
                  street_trained=bool(args.street_tagged and args.street_train),
                  street_labels=args.street_labels if args.street_tagged else None,
                  street_balanced=bool(args.street_tagged and args.street_train and args.street_balance),
                  full_shot_logit_offset=offset,
                  full_shot_calibration=calibration,
                  holdout_photos=len(holdout),
                  mirrored_training_copies=mirrored is not None and not args.no_flip)
    return 0


def _write_record(args, argv, started, train, labels, history, val_accuracy, **fields):
    """The training record next to the weights (``<out>.json``): what the classifier reads, and how it was made."""
    from ml.gender import LABELS, VERSION

    meta = {
        "version": args.version or VERSION,
        "labels": list(LABELS),
        "hidden": args.hidden,
        "input_size": 224,
        **fields,
        "train_photos": int(len(train)),
        "train_counts": dict(zip(LABELS, np.bincount(labels, minlength=2).tolist())),
        "early_stopping_val_accuracy": round(val_accuracy, 4),
        "epochs_run": len(history.history["loss"]),
        "minutes": round((time.time() - started) / 60, 1),
        "command": "python -m ml.train_gender " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    Path(str(args.out) + ".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


def _early_stopping_split(n):
    rng = np.random.default_rng(SPLIT_SEED + 1)
    val_mask = np.zeros(n, bool)
    val_mask[rng.permutation(n)[: n // 10]] = True
    return val_mask


def _train_tail(args, argv, train, ids, labels, started):
    import keras

    from ml.gender import build_gender_model, build_head

    cache = args.features_cache
    if cache and cache.exists():
        data = np.load(cache)
        if not np.array_equal(data["ids"], ids):
            raise SystemExit(f"{cache}: cached ids do not match the training split; delete it")
        plain, mirrored = data["plain"], data["mirrored"]
    else:
        plain, mirrored = extract_maps([r[2] for r in train])
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, ids=ids, plain=plain, mirrored=mirrored)

    val_mask = _early_stopping_split(len(train))
    x_fit = np.concatenate([plain[~val_mask], mirrored[~val_mask]]).astype(np.float32)
    y_fit = np.concatenate([labels[~val_mask], labels[~val_mask]])
    x_val, y_val = plain[val_mask].astype(np.float32), labels[val_mask]

    keras.utils.set_random_seed(SPLIT_SEED)
    head = build_head(args.hidden)
    full = build_gender_model(backbone_weights="imagenet", head=head)
    tail = build_tail_model(full, head)
    tail.compile(optimizer=keras.optimizers.Adam(args.learning_rate or 2e-4),
                 loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=3, restore_best_weights=True)
    history = tail.fit(x_fit, y_fit, validation_data=(x_val, y_val), epochs=args.epochs,
                       batch_size=64, callbacks=[stop], verbose=2)
    val_accuracy = float(max(history.history["val_accuracy"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    full.save_weights(args.out)
    _write_record(args, argv, started, train, labels, history, val_accuracy,
                  mode="tail (features_17, features_18 fine-tuned + head)",
                  mirrored_training_copies=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
