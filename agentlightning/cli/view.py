"""`agl view`: serve a local web page over a run — its steps, their rollouts, and what each rollout was trained on.

Example: `agl view outputs/calc_x/cpu` (after `make demo`), then open http://127.0.0.1:4748/

Where this sits: beside the training loop, read-only (`agentlightning/view/`). It binds to 127.0.0.1 by default; a
non-loopback `--host` needs `--token` (or `--insecure`), as `agl store` does.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import Any

from agentlightning.net import is_loopback

__all__ = ["add_parser", "run"]

logger = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "view",
        help="a local web page over a run: steps, rollouts, spans, chat and the trained tokens",
        description="Serve a web page over a run: reward/accuracy per step, validation per group and the timing "
        "split (run page); the rollouts of a step, sortable and filterable, GRPO groups together (step page); a "
        "rollout's span timeline, the chat as the model saw it, and the training samples built from it with the "
        "trained/masked tokens, per-token log-probs, the reward position and the advantage (rollout page). It "
        "refreshes while training runs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("target", help="a run's output folder (e.g. outputs/calc_x/cpu), a SQLite store file, or a "
                                       "store URL (http://HOST:PORT)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=4748, help="TCP port")
    parser.add_argument("--token", default=os.environ.get("AGL_VIEW_TOKEN"),
                        help="require this token (open the page once with ?token=TOKEN) (default: $AGL_VIEW_TOKEN)")
    parser.add_argument("--store-token", default=os.environ.get("AGL_STORE_TOKEN"),
                        help="the store server's token, for a store URL target (default: $AGL_STORE_TOKEN)")
    parser.add_argument("--insecure", action="store_true", help="allow a non-loopback --host without a token")


def run(args: argparse.Namespace) -> int:
    from agentlightning.view import RunSource, serve

    if not is_loopback(args.host) and not args.token and not args.insecure:
        raise SystemExit(f"agl view: refusing to bind --host {args.host} without a token: anyone who can reach port "
                         f"{args.port} could read the run's prompts and replies. Fix: pass --token TOKEN, bind --host "
                         "127.0.0.1, or pass --insecure if this network is trusted")
    try:
        source = RunSource(args.target, token=args.store_token)
    except FileNotFoundError as exc:
        raise SystemExit(f"agl view: {exc}") from None
    started = asyncio.Event()

    async def main() -> None:
        task = asyncio.create_task(serve(source, args.host, args.port, args.token or None, started))
        await started.wait()
        print(f"agl view: http://{args.host}:{args.port}/ ({args.target})", flush=True)
        await task

    asyncio.run(main())
    return 0
