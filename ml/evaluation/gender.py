"""``python -m ml.evaluate gender``: accuracy of the gender classifier on the catalogue hold-out.

The hold-out is the fixed 20 % of the Men/Women product ids of ``ml.train_gender.catalogue_split``
(a seeded hash of each id, so a subset such as the demo data keeps the same held-out ids), never
seen in training. The full model is used as the app uses it
(``GenderClassifier``: letterbox, photo + mirror).
Catalogue photos have no pose keypoints, so the face signal (``ml.face_gender``) plays no part there.

``--street DIR`` (laid out like the street data: ``photos/``, ``masks/``, ``labels.txt``) adds a
*proxy* check on full-body street photos, classified as the pipeline does (pose gate, then the
head-to-hips crop), which have no gender labels: photos whose masks show a
dress, skirt, heels, pumps, wedges, romper, tights or stockings are counted as "Women" cues, photos
with a tie and none of those as "Men" cues; the share predicted accordingly is reported, with the
face signal fused in (as the app does) and, in ``street_proxy_body_only``, without it.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

WOMEN_CUES = {"dress", "skirt", "heels", "pumps", "wedges", "romper", "tights", "stockings"}
MEN_CUES = {"tie"}


def add_arguments(parser):
    parser.add_argument("--styles", required=True, type=Path, help="catalogue styles.csv")
    parser.add_argument("--images", required=True, type=Path, help="directory of <id>.jpg photos")
    parser.add_argument("--weights", type=Path, default=None,
                        help="gender weights (default: the committed ml/weights/gender-mnv2-v2.weights.h5)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N hold-out photos only")
    parser.add_argument("--street", type=Path, default=None,
                        help="optional street data dir (photos/, masks/, labels.txt) for the proxy check")
    parser.add_argument("--batch-size", type=int, default=16)


def _predict(classifier, paths, batch_size, desc):
    from ml.images import load_image

    probs = []
    for start in tqdm(range(0, len(paths), batch_size), desc=desc, unit="batch"):
        images = [load_image(p) for p in paths[start:start + batch_size]]
        probs.append(classifier.probabilities(images, batch_size=batch_size))
    return np.concatenate(probs) if probs else np.zeros((0, 2), np.float32)


def _street_cues(directory: Path):
    """[(photo path, "Women" | "Men")] for street photos whose masks carry a gender cue."""
    labels = (directory / "labels.txt").read_text().split()
    women = {i for i, name in enumerate(labels) if name in WOMEN_CUES}
    men = {i for i, name in enumerate(labels) if name in MEN_CUES}
    from PIL import Image

    cues = []
    for mask_path in sorted((directory / "masks").glob("*.png")):
        photo = directory / "photos" / (mask_path.stem + ".jpg")
        if not photo.exists():
            continue
        present = set(np.unique(np.asarray(Image.open(mask_path))).tolist())
        if present & women:
            cues.append((photo, "Women"))
        elif present & men:
            cues.append((photo, "Men"))
    return cues


def run(args) -> dict:
    from ml.gender import LABELS, GenderClassifier
    from ml.train_gender import catalogue_split

    _, holdout = catalogue_split(args.styles, args.images)
    if args.limit:
        holdout = holdout[: args.limit]
    classifier = GenderClassifier(args.weights).load()
    truth = np.array([r[1] for r in holdout])
    start = time.perf_counter()
    probs = _predict(classifier, [r[2] for r in holdout], args.batch_size, "gender hold-out")
    seconds = time.perf_counter() - start
    predicted = probs.argmax(1)
    confusion = {
        f"{LABELS[t]}→{LABELS[p]}": int(((truth == t) & (predicted == p)).sum())
        for t in range(len(LABELS)) for p in range(len(LABELS))
    }
    result = {
        "model": classifier.version,
        "holdout_photos": int(len(truth)),
        "accuracy": round(float((predicted == truth).mean()), 4) if len(truth) else None,
        "per_class_accuracy": {
            LABELS[c]: round(float((predicted[truth == c] == c).mean()), 4)
            for c in range(len(LABELS)) if (truth == c).any()
        },
        "balanced_accuracy": round(float(np.mean([(predicted[truth == c] == c).mean()
                                                  for c in range(len(LABELS)) if (truth == c).any()])), 4)
        if len(truth) else None,
        "confusion": confusion,
        "ms_per_photo": round(1000 * seconds / max(1, len(truth)), 1),
        "target_accuracy": 0.95,
    }
    if args.street:
        from ml.images import load_image
        from ml.pose import PoseGate

        cues = _street_cues(args.street)
        if cues:
            gate = PoseGate()
            said, said_body, face_ms, faces = [], [], [], 0
            for photo, _ in tqdm(cues, desc="street proxy", unit="photo"):
                image = load_image(photo)  # as the pipeline does: pose first, then the person crop
                pose = gate.check(image)
                keypoints = pose.keypoints if pose.is_full_shot else None
                said.append(classifier.predict(image, keypoints=keypoints)[0])
                # the same photo without the face signal (the body classifier alone), and the
                # face's own cost (chip + network)
                p_body = classifier.body_p_women(image, keypoints=keypoints)
                said_body.append(LABELS[int(p_body > 0.5)])
                if keypoints and classifier.face is not None:
                    started = time.perf_counter()
                    faces += classifier.face.p_women(image, keypoints) is not None
                    face_ms.append(1000 * (time.perf_counter() - started))

            def by_cue(predictions):
                out = {}
                for cue in LABELS:
                    picked = [s for s, (_, c) in zip(predictions, cues) if c == cue]
                    if picked:
                        out[cue] = {"photos": len(picked),
                                    "predicted_as_cue": round(sum(s == cue for s in picked) / len(picked), 4)}
                return out

            result["street_proxy"] = {
                "note": "no gender labels on street photos: Women cue = dress/skirt/heels/pumps/wedges/"
                        "romper/tights/stockings in the mask, Men cue = tie and none of those",
                **by_cue(said),
            }
            if classifier.face is not None:
                result["street_proxy"]["faces_used"] = int(faces)
                result["street_proxy"]["face_ms_per_full_shot"] = round(float(np.mean(face_ms)), 2) if face_ms else None
                result["street_proxy_body_only"] = by_cue(said_body)
    return result
