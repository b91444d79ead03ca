"""`agl proxy`: run the LLM proxy as its own process, in front of vLLM replicas, recording into a store server.

Where this sits: task → store → runner → agent → **proxy** → vLLM → spans → adapter → verl.

Example:
    agl store --port 4747 &
    agl vllm serve default --port 8000 --served-model-name policy &
    agl proxy --backend http://127.0.0.1:8000/v1 --store http://127.0.0.1:4747 --port 4748
Agents then use `http://127.0.0.1:4748/rollout/<rollout_id>/attempt/<attempt_id>/v1` as their OpenAI base URL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from typing import Any

__all__ = ["add_parser", "run"]

logger = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "proxy", help="run the LLM proxy (load-balances vLLM replicas, records every call in the store)",
        description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", action="append", required=True, metavar="URL",
                        help="a vLLM replica (http://host:port or .../v1); repeat for several")
    parser.add_argument("--store", required=True, metavar="URL", help="the store server (`agl store`) URL")
    parser.add_argument("--store-token", default=os.environ.get("AGL_STORE_TOKEN"),
                        help="token of the store server (default: $AGL_STORE_TOKEN)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=4748, help="TCP port; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--api-key", default=os.environ.get("AGL_PROXY_API_KEY"),
                        help="require 'Authorization: Bearer KEY' from clients (default: $AGL_PROXY_API_KEY)")
    parser.add_argument("--upstream-api-key", default=None, help="API key sent to the vLLM replicas")
    parser.add_argument("--num-retries", type=int, default=2, help="extra tries on another replica (default: 2)")
    parser.add_argument("--model-list", default=None, metavar="JSON",
                        help='client model names → upstream names and default sampling params, e.g. '
                             '\'{"policy": {"model": "smol", "sampling_params": {"temperature": 0.7}}}\'')
    parser.add_argument("--request-logprobs", action="store_true", help="also ask vLLM for logprobs and record them")
    parser.add_argument("--keep-token-ids", action="store_true",
                        help="leave token IDs in responses even when the client did not ask for them")


def run(args: argparse.Namespace) -> int:
    from agentlightning.proxy import LLMProxy
    from agentlightning.store import LightningStoreClient

    try:
        model_list = json.loads(args.model_list) if args.model_list else None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"agl proxy: --model-list is not valid JSON ({exc}); see `agl proxy --help`") from None
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_key:
        logger.warning("binding %s without --api-key: anyone who can reach this port can use the policy", args.host)
    store = LightningStoreClient(args.store, token=args.store_token)
    try:
        proxy = LLMProxy(args.backend, store, host=args.host, port=args.port, model_list=model_list,
                         num_retries=args.num_retries, api_key=args.api_key, request_logprobs=args.request_logprobs,
                         keep_token_ids=args.keep_token_ids, upstream_api_key=args.upstream_api_key)
    except ValueError as exc:
        raise SystemExit(f"agl proxy: {exc}") from None

    from agentlightning.net import until_stopped

    async def serve() -> None:
        await proxy.start()
        print(f"agl proxy: listening on {proxy.url}, backends {proxy.backends}, store {args.store}", flush=True)
        try:
            await until_stopped(proxy.wait())  # Ctrl-C / SIGTERM: a graceful stop
        finally:
            await proxy.stop()
            await store.close()

    try:
        import uvloop

        uvloop.run(serve())
    except ImportError:
        asyncio.run(serve())
    return 0
