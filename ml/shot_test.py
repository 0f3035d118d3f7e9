"""The cheap test before the pose gate: can this photo be a full shot at all? (issue 14, item 4)

Catalogue ingest embeds every photo anyway, and the pose gate (``ml.pose.PoseGate``: a person detector,
then a landmark model) was the largest cost per image left. Most catalogue photos are a garment alone or
a model cut at the hips or knees: they can never pass the gate. This test is a linear softmax over the
embedder's whole-image vector with three classes, learnt from the gate's own answers (distillation):
*no person*, *a person, not a full shot*, *full shot*. A photo whose full-shot probability is under
``threshold`` skips the gate and is not a full shot; the others run the gate as before, so the gate alone
still decides every full shot. The no-person probability replaces the gate's "person seen" for the colour
reader (whether it looks for a person's pixels) on the photos that skip it.

The threshold is chosen on the training photos with a wide margin (a fraction of the lowest full-shot
probability any of the gate's full shots got) and the test is measured on photos it never saw: the street
validation split, every tag-only street photo and a held-out part of the catalogue
(``python -m ml.shot_test``, model card ``ml/weights/SHOT_TEST.md``). It belongs to one embedder version
(stored in the file) and is not used with another one.

    python -m ml.shot_test --catalogue-images I --street DIR --tagged DIR --out ml/weights/shot-test.npz \
        [--report docs/shot-test.json] [--margin 0.25]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.heads import EmbeddingHead, softmax

DEFAULT_PATH = Path(__file__).resolve().parent / "weights" / "shot-test.npz"
CLASSES = ("no_person", "person", "full_shot")
NO_PERSON, PERSON, FULL_SHOT = range(3)


@dataclass(frozen=True)
class Screen:
    """The test's answer for one photo: run the pose gate or not, and whether a person is likely there."""

    run_gate: bool
    person: bool


class ShotTest(EmbeddingHead):
    """``screen(vectors) -> [Screen]`` for vectors of ``embedder_version`` only (see ``available_for``)."""

    DEFAULT_PATH = DEFAULT_PATH
    EXTRA = {"threshold": float, "person_threshold": float}

    def screen(self, vectors) -> list[Screen]:
        test = self._load()
        p = self.probabilities(vectors)
        return [Screen(run_gate=bool(row[FULL_SHOT] >= test["threshold"]),
                       person=bool(row[NO_PERSON] < test["person_threshold"])) for row in p]


# --------------------------------------------------------------------------------------------
# Training and measurement
# --------------------------------------------------------------------------------------------
def gate_class(result) -> int:
    if result.is_full_shot:
        return FULL_SHOT
    return PERSON if (getattr(result, "person_seen", False) or result.keypoints) else NO_PERSON


def label_photos(paths, gate, embedder, cache_dir: Path, batch: int = 64, progress: bool = True):
    """(vectors (n, d), gate classes (n,), readable mask (n,)) for image files, cached per models and file list."""
    from tqdm import tqdm

    from ml.evaluation.retrieval import weights_stamp
    from ml.images import ImageError, load_image

    key = "|".join([embedder.version, weights_stamp(embedder), str(gate.version)] + [str(p) for p in paths])
    cache = Path(cache_dir) / f"shot-labels-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    if cache.exists():
        with np.load(cache) as data:
            return data["vectors"], data["classes"], data["readable"]
    vectors = np.zeros((len(paths), embedder.dim), np.float32)
    classes = np.full(len(paths), -1)
    readable = np.zeros(len(paths), bool)
    for start in tqdm(range(0, len(paths), batch), desc="gate + embed", unit="batch", disable=not progress):
        pictures, index = [], []
        for i in range(start, min(start + batch, len(paths))):
            try:
                picture = load_image(paths[i])
            except ImageError:
                continue
            classes[i] = gate_class(gate.check(picture))
            pictures.append(picture)
            index.append(i)
        if pictures:
            vectors[index] = embedder.embed(pictures)
            readable[index] = True
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=vectors, classes=classes, readable=readable)
    return vectors, classes, readable


def measure(p, classes, threshold, person_threshold) -> dict:
    """What the test does on photos with the gate's answers ``classes``."""
    run_gate = p[:, FULL_SHOT] >= threshold
    full = classes == FULL_SHOT
    person_true = classes != NO_PERSON
    person_said = p[:, NO_PERSON] < person_threshold
    return {
        "photos": int(len(classes)),
        "gate_full_shots": int(full.sum()),
        "full_shots_lost": int((full & ~run_gate).sum()),
        "gate_runs_skipped": round(float((~run_gate).mean()), 4) if len(classes) else None,
        "gate_classes": {name: int((classes == i).sum()) for i, name in enumerate(CLASSES)},
        "person_agreement": round(float((person_true == person_said).mean()), 4) if len(classes) else None,
        "lowest_full_shot_probability": round(float(p[full, FULL_SHOT].min()), 6) if full.any() else None,
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m ml.shot_test", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--catalogue-images", required=True, type=Path, help="catalogue photos (*.jpg)")
    p.add_argument("--street", required=True, type=Path, help="street photos with masks (photos/): split by ml.detection_data.split")
    p.add_argument("--tagged", required=True, type=Path, help="tag-only street photos (photos/): measured only")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--report", type=Path, default=None, help="JSON of the measurement")
    p.add_argument("--margin", type=float, default=0.01,
                   help="threshold = margin × the lowest full-shot probability of the gate's training full shots")
    p.add_argument("--photo-weights", choices=("uniform", "balanced"), default="uniform",
                   help="balanced: each domain half, each class equal within its domain")
    p.add_argument("--catalogue-held-out", type=float, default=0.15)
    p.add_argument("--embedder-weights", type=Path, default=None, help="default: the committed embedder")
    p.add_argument("--cache-dir", type=Path, default=Path("build/shot_test"))
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from ml.heads import balanced_weights, fit_softmax
    from ml.detection_data import split
    from ml.embed import Embedder
    from ml.pose import PoseGate

    embedder, gate = Embedder(args.embedder_weights), PoseGate()
    catalogue = sorted(args.catalogue_images.glob("*.jpg"))
    cat_train, cat_held = split([p.name for p in catalogue], val_fraction=args.catalogue_held_out, seed=11)
    street_train, street_val = split([p.stem for p in sorted((args.street / "photos").glob("*.jpg"))])
    sets = {
        "catalogue_train": [args.catalogue_images / n for n in cat_train],
        "street_train": [args.street / "photos" / f"{n}.jpg" for n in street_train],
        "catalogue_held_out": [args.catalogue_images / n for n in cat_held],
        "street_validation": [args.street / "photos" / f"{n}.jpg" for n in street_val],
        "street_tagged": sorted((args.tagged / "photos").glob("*.jpg")),
    }
    data = {}
    for name, paths in sets.items():
        vectors, classes, readable = label_photos(paths, gate, embedder, args.cache_dir)
        data[name] = (vectors[readable], classes[readable])
        print(json.dumps({"event": "labelled", "set": name, "photos": int(readable.sum()),
                          "gate_classes": {c: int((classes[readable] == i).sum()) for i, c in enumerate(CLASSES)}}),
              flush=True)

    train = ("catalogue_train", "street_train")
    x = np.concatenate([data[n][0] for n in train]).astype(np.float64)
    y = np.concatenate([data[n][1] for n in train])
    if args.photo_weights == "balanced":
        domain = np.concatenate([np.full(len(data[n][1]), i) for i, n in enumerate(train)])
        weights = balanced_weights(domain, y)
    else:  # every photo weighs the same (the default: see ml/weights/SHOT_TEST.md)
        weights = np.ones(len(y))
    w, b = fit_softmax(x, y, len(CLASSES), weights)
    p_train = softmax(x.astype(np.float32) @ w + b)
    lowest = float(p_train[y == FULL_SHOT, FULL_SHOT].min())
    threshold, person_threshold = args.margin * lowest, 0.5

    report = {"embedder": embedder.version, "pose_gate": str(gate.version), "threshold": threshold,
              "photo_weights": args.photo_weights,
              "person_threshold": person_threshold, "margin": args.margin, "argv": sys.argv[1:] if argv is None else argv,
              "sets": {}}
    for name, (vectors, classes) in data.items():
        report["sets"][name] = {"trained_on": name in train,
                                **measure(softmax(vectors @ w + b), classes, threshold, person_threshold)}
    version = f"shot-test-1-{embedder.version}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, weights=w, bias=b, classes=np.array(CLASSES), embedder_version=embedder.version,
             version=version, threshold=threshold, person_threshold=person_threshold)
    report["version"] = version
    text = json.dumps(report, indent=2)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
