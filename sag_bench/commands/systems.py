"""``sag-bench systems``: list the registered systems (built-in and plugins) with one-line descriptions."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("systems", help="list systems with one-line descriptions")
    parser.add_argument("--kind", default="systems", choices=["systems", "datasets", "embedders", "backbones"],
                        help="which kind of component to list (default: systems)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sag_bench import registry

    rows = registry.listing(args.kind)
    width = max((len(name) for name, _ in rows), default=0)
    for name, summary in rows:
        print(f"{name:<{width}}  {summary}")
    return 0
