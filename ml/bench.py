"""Speed benchmarks of the ML pipeline: ``python -m ml.bench {embed,pipeline} ...``.

Each subcommand lives in ``ml.benchmarks.<name>``; the result is printed as one JSON object.
"""
import sys

from ml.commands import run_subcommands

COMMANDS = {
    "embed": "Embedder throughput in images per second at a given batch size.",
    "pipeline": "Per-stage p50/p95 latency of a full-shot analysis after warm-up.",
}


def main(argv=None):
    return run_subcommands("python -m ml.bench", __doc__, "ml.benchmarks", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
