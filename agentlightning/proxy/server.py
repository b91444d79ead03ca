"""`LLMProxy`: the OpenAI-compatible proxy between agents and the vLLM replicas that records every call as a span.

Where this sits: task → store → runner → agent → **proxy** → vLLM → **spans** → adapter → verl. The trainer publishes
`proxy.as_resource(model=...)` (a `ProxyLLM`); each runner hands its agent the attempt-bound URL; the proxy forwards
each call to the least-loaded replica, forces `return_token_ids` upstream, strips what the client did not ask for,
and stores one `llm.call` span per call (`recording.py`) under the rollout/attempt named in the URL. The request
handling and all the state it uses are one object, `ProxyApp` (`app.py`); this module only serves it (uvicorn,
lifecycle, threads) and reads its state through properties.

Run it in-process (`await proxy.start()` / `await proxy.stop()`, sharing the caller's event loop and store), on a
private thread (`proxy.start_in_thread()` / `proxy.stop_thread()`: then the store must be safe to use from that
thread's loop, e.g. a `LightningStoreClient`), or as a process: `agl proxy --backend URL --store URL`.

model_list: optional `{client model name: {"model": upstream served name (default: the same),
"sampling_params": {defaults merged under the request's own values}}}`; with it, unknown model names get 404 and
`/v1/models` lists these names; without it, requests pass through with the model they name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import uvicorn

from agentlightning.net import EmbeddedServer, http_url
from agentlightning.proxy.app import ProxyApp
from agentlightning.proxy.backends import BackendPool
from agentlightning.store.base import LightningStore
from agentlightning.types import ProxyLLM

__all__ = ["LLMProxy"]

logger = logging.getLogger(__name__)

# Agents' clients drop idle connections after 5 s (openai's and httpx's default, also in agentlightning.clients);
# the proxy keeps them 75 s, so it is always the client that closes an idle connection, never mid-request.
KEEP_ALIVE_SECONDS = 75
UPSTREAM_KEEP_ALIVE_SECONDS = 4.0


class LLMProxy:
    """OpenAI-compatible proxy over `backends` that records calls in `store` (see the module docstring).

    num_retries: extra tries on another replica after a connection error or 5xx. api_key: required from clients
    when set (401 otherwise). upstream_api_key: sent to the replicas. request_logprobs: also ask vLLM for logprobs
    and record them. keep_token_ids: leave token IDs/logprobs in responses even if the client did not ask.
    timeout_s: read timeout of one upstream call (generation can be long).
    """

    def __init__(self, backends: Iterable[str], store: LightningStore, host: str = "127.0.0.1", port: int = 0,
                 model_list: Mapping[str, Any] | None = None, num_retries: int = 2, api_key: str | None = None,
                 request_logprobs: bool = False, keep_token_ids: bool = False, upstream_api_key: str | None = None,
                 timeout_s: float = 600.0, max_connections: int = 1024, cooldown_s: float = 5.0):
        self.host, self.port = host, port
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self.app = ProxyApp(store, BackendPool(backends, num_retries=num_retries, cooldown_s=cooldown_s),
                            model_list=model_list, api_key=api_key, request_logprobs=request_logprobs,
                            keep_token_ids=keep_token_ids, upstream_api_key=upstream_api_key)
        self._server: EmbeddedServer | None = None
        self._task: asyncio.Task[Any] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ the app's state, read through
    @property
    def store(self) -> LightningStore:
        return self.app.store

    @property
    def pool(self) -> BackendPool:
        return self.app.pool

    @property
    def model_list(self) -> dict[str, dict[str, Any]]:
        return self.app.model_list

    @property
    def api_key(self) -> str | None:
        return self.app.api_key

    # ------------------------------------------------------------------ addresses and resources
    @property
    def url(self) -> str:
        """`http://host:port` of the proxy (known once started)."""
        return http_url(self.host, self.port)

    @property
    def base_url(self) -> str:
        """The plain (unrecorded) OpenAI base URL, `http://host:port/v1`."""
        return f"{self.url}/v1"

    def as_resource(self, model: str | None = None, sampling_parameters: dict[str, Any] | None = None) -> ProxyLLM:
        """The `ProxyLLM` agents get (runners bind it to an attempt with `with_attempted_rollout`)."""
        if model is None:
            if not self.model_list:
                raise ValueError("as_resource() needs model=... (the name clients send) when the proxy has no "
                                 "model_list. Fix: proxy.as_resource(model='my-policy')")
            model = next(iter(self.model_list))
        if not self.port:
            raise RuntimeError("the proxy has no port yet: call start() (or start_in_thread()) before as_resource()")
        return ProxyLLM(endpoint=self.base_url, model=model, api_key=self.api_key,
                        sampling_parameters=dict(sampling_parameters or {}))

    # ------------------------------------------------------------------ replicas
    @property
    def backends(self) -> list[str]:
        return self.pool.urls

    def add_backend(self, url: str) -> None:
        self._on_loop(self.pool.add_backend, url)

    def remove_backend(self, url: str) -> None:
        self._on_loop(self.pool.remove_backend, url)

    def replace_backends(self, urls: Iterable[str]) -> None:
        self._on_loop(self.pool.replace_backends, list(urls))

    def _on_loop(self, fn: Any, *args: Any) -> None:
        loop = self._loop if self._thread is not None else None
        if loop is None or threading.current_thread() is self._thread:
            fn(*args)
            return
        future: asyncio.Future[Any] = asyncio.run_coroutine_threadsafe(_call(fn, *args), loop)  # type: ignore[assignment]
        future.result(timeout=10)

    # ------------------------------------------------------------------ lifecycle
    def _new_client(self) -> httpx.AsyncClient:
        # Idle upstream connections are dropped after 4 s, before vLLM's uvicorn closes them (its keep-alive is 5 s):
        # a request is then never sent on a connection the server is closing (a `ReadError` mid-rollout).
        limits = httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=self.max_connections,
                              keepalive_expiry=UPSTREAM_KEEP_ALIVE_SECONDS)
        timeout = httpx.Timeout(self.timeout_s, connect=5.0, pool=self.timeout_s)
        return httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False)

    async def start(self) -> None:
        """Serve on the current event loop until `stop()`."""
        if self._server is not None:
            raise RuntimeError(f"LLMProxy already started on {self.url}; call stop() first")
        self.app.open(self._new_client())
        config = uvicorn.Config(self.app.asgi, host=self.host, port=self.port, log_level="warning", lifespan="off",
                                access_log=False, timeout_keep_alive=KEEP_ALIVE_SECONDS)
        self._server = EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._server = None
                self._task.result()  # re-raise why it could not start (e.g. port in use)
                raise RuntimeError(f"LLM proxy on {self.host}:{self.port} stopped during start-up")
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        logger.info("LLM proxy listening on %s, backends %s", self.url, self.pool.urls)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.app.aclose()
        self._server, self._task = None, None

    async def wait(self) -> None:
        """Block until the server stops."""
        if self._task is not None:
            await self._task

    def start_in_thread(self, timeout: float = 30.0) -> None:
        """Serve on a private event loop in a daemon thread (for sync callers)."""
        ready, errors = threading.Event(), []
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self.start())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                errors.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="agl-llm-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or errors:
            self._thread = None
            raise RuntimeError(f"LLM proxy did not start on {self.host}:{self.port}: {errors or 'timed out'}")

    def stop_thread(self) -> None:
        if self._thread is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._thread = None


async def _call(fn: Any, *args: Any) -> Any:
    return fn(*args)
