"""`agl store`: serve a LightningStore over HTTP so runners and proxies in other processes can share it.

Example: `agl store --backend sqlite --path runs/store.sqlite --port 4747 --token s3cret`
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]

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
                        help="require 'Authorization: Bearer TOKEN' on every request (default: $AGL_STORE_TOKEN)")


def run(args: argparse.Namespace) -> int:
    from agentlightning.store import InMemoryLightningStore, LightningStoreServer, SqliteLightningStore

    if args.backend == "sqlite" and args.path is None:
        raise SystemExit("agl store: --backend sqlite needs --path FILE (e.g. --path runs/store.sqlite)")
    if args.backend == "memory" and args.path is not None:
        raise SystemExit("agl store: --path is only used with --backend sqlite; drop it or add --backend sqlite")
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.token:
        logger.warning("binding %s without --token: anyone who can reach this port can change the store", args.host)
    store = InMemoryLightningStore() if args.backend == "memory" else SqliteLightningStore(args.path)
    server = LightningStoreServer(store, host=args.host, port=args.port, token=args.token)

    async def serve() -> None:
        await server.start()
        print(f"agl store: {args.backend} store listening on {server.url}" +
              (f" (file {args.path})" if args.path else ""), flush=True)
        try:
            await server.wait()
        finally:
            await server.stop()
            await store.close()

    asyncio.run(serve())
    return 0
