"""`agl store`: serve a LightningStore over HTTP so runners and proxies in other processes can share it.

Example: `agl store --backend sqlite --path runs/store.sqlite --port 4747 --token s3cret`

Where this sits: the stand-alone form of the trainer's store server (`agentlightning/store/server.py`), for runners
and proxies in other processes or on other machines. It binds to 127.0.0.1 by default; binding any other address
without a token refuses to start unless `--insecure` says the network is trusted (the store holds the policy's
endpoints and accepts rewards, so anyone who reaches the port could read and change both).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentlightning.net import is_loopback, until_stopped

if TYPE_CHECKING:
    from agentlightning.store import LightningStore

__all__ = ["add_parser", "run", "serve_forever"]

logger = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "store",
        help="serve a LightningStore (memory or SQLite) over HTTP",
        description="Serve a LightningStore over HTTP (the API LightningStoreClient speaks). "
        "The memory backend loses everything when stopped; the SQLite backend is durable (WAL) and can be "
        "restarted on the same file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--backend", choices=["memory", "sqlite"], default="memory", help="where state lives")
    parser.add_argument("--path", type=Path, help="SQLite file (required with --backend sqlite; created if missing)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to bind; keep the loopback default unless runners are on other machines")
    parser.add_argument("--port", type=int, default=4747, help="TCP port (0 picks a free one)")
    parser.add_argument("--token", default=os.environ.get("AGL_STORE_TOKEN"),
                        help="require 'Authorization: Bearer TOKEN' on every request but /health "
                             "(default: $AGL_STORE_TOKEN)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback --host without a token (only on a network you trust)")


def run(args: argparse.Namespace) -> int:
    from agentlightning.store import InMemoryLightningStore, SqliteLightningStore

    if args.backend == "sqlite" and args.path is None:
        raise SystemExit("agl store: --backend sqlite needs --path FILE (e.g. --path runs/store.sqlite)")
    if args.backend == "memory" and args.path is not None:
        raise SystemExit("agl store: --path is only used with --backend sqlite; drop it or add --backend sqlite")
    token = args.token or None
    if not is_loopback(args.host) and token is None:
        if not args.insecure:
            raise SystemExit(
                f"agl store: refusing to bind --host {args.host} without a token: anyone who can reach port "
                f"{args.port} could read and change the store (rollouts, rewards, the policy's endpoints). Fix: pass "
                "--token TOKEN (or set AGL_STORE_TOKEN) and give runners the same token, bind --host 127.0.0.1, or "
                "pass --insecure if this network is trusted")
        logger.warning("binding %s without a token (--insecure): anyone who can reach this port can read and change "
                       "the store", args.host)
    store = InMemoryLightningStore() if args.backend == "memory" else SqliteLightningStore(args.path)
    serve_forever(store, args.host, args.port, token,
                  f"agl store: {args.backend} store listening on {{url}}" + (f" (file {args.path})" if args.path else ""))
    return 0


def serve_forever(store: LightningStore, host: str, port: int, token: str | None, announce: str) -> None:
    """Serve `store` in this process until Ctrl-C/SIGTERM, on uvloop when it is installed (it comes with uvicorn's
    standard extras and vLLM). Prints `announce` with `{url}` filled in once listening (benchmarks read it)."""
    from agentlightning.store import LightningStoreServer

    server = LightningStoreServer(store, host=host, port=port, token=token)

    async def serve() -> None:
        await server.start()
        print(announce.format(url=server.url), flush=True)
        try:
            await until_stopped(server.wait())  # Ctrl-C / SIGTERM: a graceful stop
        finally:
            await server.stop()
            await store.close()

    try:
        import uvloop
    except ImportError:  # pragma: no cover - depends on the environment
        asyncio.run(serve())
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve())
