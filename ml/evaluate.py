"""Evaluation commands: ``python -m ml.evaluate {pose,detection,gender,retrieval,street-to-shop} ...``.

Each subcommand lives in ``ml.evaluation.<name>``; the result is printed as one JSON object.
"""
import sys

from ml.commands import run_subcommands

COMMANDS = {
    "pose": "Pose gate precision/recall: street photos (full shots) vs catalogue close-ups.",
    "detection": "Article detector AP50 per class, mAP50, mAP50:95 and ms per photo.",
    "gender": "Gender classifier accuracy on a catalogue hold-out.",
    "retrieval": "Embedding retrieval precision@k and tolerance accuracy.",
    "street-to-shop": "What shoppers see for street garments: rows per garment and their article types (look/crop).",
}


def main(argv=None):
    return run_subcommands("python -m ml.evaluate", __doc__, "ml.evaluation", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
