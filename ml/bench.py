"""Speed benchmarks of the ML pipeline: ``python -m ml.bench {embed,pipeline} ...``.

Each subcommand lives in ``ml.benchmarks.<name>`` and exposes ``add_arguments(parser)``
and ``run(args) -> dict``; the dict is printed as one JSON object.
"""
import argparse
import importlib
import json
import sys

COMMANDS = {
    "embed": "Embedder throughput in images per second at a given batch size.",
    "pipeline": "Per-stage p50/p95 latency of a full-shot analysis after warm-up.",
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ml.bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"ml.benchmarks.{name}")
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    module = importlib.import_module(f"ml.benchmarks.{args.command}")
    result = module.run(args)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
