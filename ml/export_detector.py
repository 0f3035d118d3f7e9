"""Export a training checkpoint as the weights the app loads.

    python -m ml.export_detector --run build/detector_run [--checkpoint last|detector] --out ml/weights/detector.weights.h5

Training checkpoints also hold the optimizer state (three times the size). This rebuilds the
detector without an optimizer, loads the checkpoint and writes the weights alone (float32), with
the model's JSON beside them (``detector.json``: image size, categories, training data and
epoch), which ``ml.detect.ArticleDetector`` reads.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path


def export(run_dir: Path, checkpoint: str, out: Path) -> dict:
    from ml.detect import ArticleDetector, build_detector

    source = run_dir / f"{checkpoint}.weights.h5"
    config = json.loads((run_dir / "detector.json").read_text())
    state = json.loads((run_dir / "state.json").read_text())
    if checkpoint == "last":
        config["epoch"] = state["epoch"]
        config.pop("val_mAP50", None)
        config.pop("val_mAP50:95", None)
    model = build_detector(tuple(config["image_size"]), backbone_weights=None, fpn_depth=config.get("fpn_depth", 1))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Skipping variable loading for optimizer.*")
        model.load_weights(str(source))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name.replace(".weights.h5", ".tmp.weights.h5"))
    model.save_weights(str(tmp))
    os.replace(tmp, out)
    config["exported_from"] = f"{checkpoint}.weights.h5"
    out.with_name(out.name.replace(".weights.h5", ".json")).write_text(json.dumps(config, indent=2) + "\n")
    detector = ArticleDetector(out)
    return {"out": str(out), "bytes": out.stat().st_size, "version": detector.version, "epoch": config["epoch"]}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ml.export_detector", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path, help="training run directory")
    parser.add_argument("--checkpoint", choices=("last", "detector"), default="last",
                        help="last epoch (default) or the best validation checkpoint")
    parser.add_argument("--out", required=True, type=Path, help="*.weights.h5 to write")
    args = parser.parse_args(argv)
    print(json.dumps(export(args.run, args.checkpoint, args.out), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
