"""Shared runner of the ``python -m ml.evaluate`` and ``python -m ml.bench`` command groups.

Each subcommand is a module ``<package>.<name>`` (dashes in the name become underscores) exposing
``add_arguments(parser)`` and ``run(args) -> dict``; the dict is printed as one JSON object.
"""
import argparse
import importlib
import json
import sys


def run_subcommands(prog, description, package, commands, argv=None):
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in commands.items():
        module = importlib.import_module(f"{package}.{name.replace('-', '_')}")
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    result = importlib.import_module(f"{package}.{args.command.replace('-', '_')}").run(args)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
