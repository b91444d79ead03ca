"""`agl`: the command line of agentlightning.

Each subcommand lives in its own module with two functions: `add_parser(subparsers)` declares its arguments and
help, `run(args) -> int` does the work. Adding a subcommand = one module + one entry in `_SUBCOMMANDS`.
Run `agl --help` for the list and `agl <subcommand> --help` for each.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

# Module names under agentlightning.cli, in the order `agl --help` lists them.
_SUBCOMMANDS = ["store", "model", "vllm", "proxy", "view"]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(
        prog="agl",
        description="agentlightning: train any AI agent with reinforcement learning (vLLM + LLM proxy + verl).",
        epilog="Run `agl <subcommand> --help` for the options of each subcommand.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", metavar="<subcommand>")
    modules = {}
    for name in _SUBCOMMANDS:
        module = importlib.import_module(f"agentlightning.cli.{name}")
        module.add_parser(subparsers)
        modules[name] = module
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    parser, modules = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)} (see `agl {args.command} --help`)")
    args.extra = extra
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not args.verbose:  # one INFO line per HTTP request (the proxy's upstream and store calls) drowns the log
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(modules[args.command].run(args) or 0)  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
