"""Evaluation commands: ``python -m ml.evaluate {pose,detection,gender,retrieval} ...``.

Each subcommand lives in ``ml.evaluation.<name>`` and exposes ``add_arguments(parser)``
and ``run(args) -> dict``; the dict is printed as one JSON object.
"""
import argparse
import importlib
import json
import sys

COMMANDS = {
    "pose": "Pose gate precision/recall: street photos (full shots) vs catalogue close-ups.",
    "detection": "Article detector AP50 per class, mAP50, mAP50:95 and ms per photo.",
    "gender": "Gender classifier accuracy on a catalogue hold-out.",
    "retrieval": "Embedding retrieval precision@k and tolerance accuracy.",
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ml.evaluate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"ml.evaluation.{name}")
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    module = importlib.import_module(f"ml.evaluation.{args.command}")
    result = module.run(args)
    json.dump(result, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
