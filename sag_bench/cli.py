"""The ``sag-bench`` command. Thin: each subcommand lives in ``sag_bench/commands/<name>.py``.

A command module is light to import (heavy imports inside its handler) and provides
``register(subparsers)``, which adds its parser and sets ``handler`` to a function taking the parsed args.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import sys

COMMANDS = ("systems", "data", "weights", "train", "generate", "run", "report", "fad", "listen", "demo")

from sag_bench.errors import SagBenchError


class Parser(argparse.ArgumentParser):
    """argparse with a did-you-mean for a mistyped command or choice (its subcommand parsers are of this class)."""

    def _check_value(self, action: argparse.Action, value: object) -> None:
        if action.choices is not None and value not in action.choices:
            from sag_bench.registry import did_you_mean

            choices = [str(choice) for choice in action.choices]
            raise argparse.ArgumentError(action, f"invalid choice: {value!r}{did_you_mean(str(value), choices)} "
                                                 f"(choose from {', '.join(choices)})")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every available subcommand."""
    parser = Parser(prog="sag-bench", description="Benchmark for Singing Accompaniment Generation.")
    parser.add_argument("--version", action="version", version=f"sag-bench {importlib.metadata.version('sag-bench')}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module_name = f"sag_bench.commands.{name}"
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sag-bench`` console script."""
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
    except (SagBenchError, FileNotFoundError) as error:  # expected failures: one line, no traceback
        print(f"sag-bench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sag-bench: interrupted (finished work is kept; rerun to resume)", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
