"""The store over HTTP: `LightningStoreServer` (FastAPI, wraps any backend) and `LightningStoreClient` (httpx).

Where this sits: between processes. The trainer owns a store and serves it; runner processes (and the LLM proxy,
when it runs as its own process) talk to it through `LightningStoreClient`, which implements the same
`LightningStore` contract, so code never knows which side of the wire it is on.

Wire format: JSON bodies of the pydantic models in `agentlightning.types`. Errors map to status codes and back:
`NotFoundError` ↔ 404, `InvalidTransitionError` ↔ 409, a malformed request ↔ 400 (the validation message in
`detail`), a missing/wrong token ↔ 401. The server binds to 127.0.0.1 unless told otherwise; with `token` set, every
route but `/health` needs `Authorization: Bearer <token>`. It also sweeps timeouts every `sweep_seconds`, so expired
attempts are requeued even when nobody asks.

Run one: `agl store --backend sqlite --path runs/store.sqlite --port 4747`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Literal

import httpx
import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from agentlightning.net import http_url
from agentlightning.store.base import InvalidTransitionError, LightningStore, NotFoundError, RolloutRequest, StoreError
from agentlightning.types import (
    Attempt,
    AttemptedRollout,
    AttemptStatus,
    NamedResources,
    ResourcesUpdate,
    Rollout,
    RolloutConfig,
    RolloutMode,
    RolloutStatus,
    Span,
)

__all__ = ["LightningStoreClient", "LightningStoreServer", "StoreRequestError"]

logger = logging.getLogger(__name__)

# the longest one long-polling dequeue waits on the server (a runner stopping awaits its pending dequeue)
MAX_DEQUEUE_WAIT_SECONDS = 10.0


class StoreRequestError(StoreError, ValueError):
    """The store rejected a request as malformed (HTTP 400)."""


# ---------------------------------------------------------------------------------------------------- request bodies
class _Enqueue(BaseModel):
    requests: list[dict[str, Any]]


class _Dequeue(BaseModel):
    worker_id: str | None = None
    wait_seconds: float = Field(default=0.0, ge=0.0)


class _UpdateAttempt(BaseModel):
    status: AttemptStatus | None = None
    heartbeat: bool = False
    worker_id: str | None = None
    metadata: dict[str, Any] | None = None


class _UpdateRollout(BaseModel):
    status: RolloutStatus | None = None
    metadata: dict[str, Any] | None = None
    resources_id: str | None = None


class _Wait(BaseModel):
    rollout_ids: list[str]
    timeout: float | None = None


class _Query(BaseModel):
    status: list[RolloutStatus] | None = None
    rollout_ids: list[str] | None = None


class _Spans(BaseModel):
    spans: list[Span]


class _Resources(BaseModel):
    resources: NamedResources


def _error(status: int, exc: BaseException) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": str(exc), "error": type(exc).__name__})


def build_app(store: LightningStore, token: str | None = None) -> FastAPI:
    """The FastAPI app exposing `store`; routes mirror the `LightningStore` methods one to one."""

    async def check_token(request: Request, authorization: str | None = Header(default=None)) -> None:
        if token is not None and request.url.path != "/health" and not hmac.compare_digest(
                (authorization or "").encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "this store needs a token: send 'Authorization: Bearer <token>' "
                                     "(LightningStoreClient(url, token=...) or AGL_STORE_TOKEN)")

    app = FastAPI(title="agentlightning store", dependencies=[Depends(check_token)])

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return _error(404, exc)

    @app.exception_handler(InvalidTransitionError)
    async def _conflict(_: Request, exc: InvalidTransitionError) -> JSONResponse:
        return _error(409, exc)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse(status_code=400, content={"detail": "; ".join(parts), "error": "RequestValidationError"})

    @app.exception_handler(ValidationError)
    async def _bad_value(_: Request, exc: ValidationError) -> JSONResponse:
        return _error(400, exc)

    @app.exception_handler(TypeError)
    async def _bad_args(_: Request, exc: TypeError) -> JSONResponse:
        return _error(400, exc)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/rollouts/enqueue")
    async def enqueue(body: _Enqueue) -> list[Rollout]:
        return await store.enqueue_many_rollouts(body.requests)

    @app.post("/rollouts/dequeue")
    async def dequeue(body: _Dequeue, request: Request) -> AttemptedRollout | None:
        claimed = await store.dequeue_rollout(body.worker_id, min(body.wait_seconds, MAX_DEQUEUE_WAIT_SECONDS))
        if claimed is not None:
            await asyncio.sleep(0)  # one loop pass, so a connection the client closed meanwhile is seen as closed
        if claimed is not None and await request.is_disconnected():  # the long poll's client gave up meanwhile
            await store.update_rollout(claimed.rollout_id, status="requeuing",
                                       metadata={"requeued_by": "dequeue client disconnected"})
            return None
        return claimed

    @app.post("/rollouts/query")
    async def query(body: _Query) -> list[Rollout]:
        return await store.query_rollouts(body.status, body.rollout_ids)

    @app.post("/rollouts/wait")
    async def wait(body: _Wait) -> list[Rollout]:
        return await store.wait_for_rollouts(body.rollout_ids, body.timeout)

    @app.get("/rollouts/{rollout_id}")
    async def get_rollout(rollout_id: str) -> Rollout:
        return await store.get_rollout_by_id(rollout_id)

    @app.post("/rollouts/{rollout_id}/update")
    async def update_rollout(rollout_id: str, body: _UpdateRollout) -> Rollout:
        return await store.update_rollout(rollout_id, body.status, body.metadata, body.resources_id)

    @app.post("/rollouts/{rollout_id}/cancel")
    async def cancel(rollout_id: str) -> Rollout:
        return await store.cancel(rollout_id)

    @app.get("/rollouts/{rollout_id}/attempts")
    async def attempts(rollout_id: str) -> list[Attempt]:
        return await store.query_attempts(rollout_id)

    @app.post("/rollouts/{rollout_id}/attempts/{attempt_id}/update")
    async def update_attempt(rollout_id: str, attempt_id: str, body: _UpdateAttempt) -> Attempt:
        return await store.update_attempt(rollout_id, attempt_id, body.status, body.heartbeat, body.worker_id,
                                          body.metadata)

    @app.post("/rollouts/{rollout_id}/attempts/{attempt_id}/next_span_sequence_id")
    async def next_sequence_id(rollout_id: str, attempt_id: str) -> int:
        return await store.get_next_span_sequence_id(rollout_id, attempt_id)

    @app.get("/rollouts/{rollout_id}/spans")
    async def spans(rollout_id: str, attempt_id: str = "latest") -> list[Span]:
        return await store.query_spans(rollout_id, None if attempt_id == "all" else attempt_id)

    @app.post("/spans")
    async def add_spans(body: _Spans) -> list[Span]:
        return await store.add_spans(body.spans)

    @app.post("/resources")
    async def add_resources(body: _Resources) -> ResourcesUpdate:
        return await store.add_resources(body.resources)

    @app.get("/resources/latest")
    async def latest_resources() -> ResourcesUpdate | None:
        return await store.get_latest_resources()

    @app.put("/resources/{resources_id}")
    async def update_resources(resources_id: str, body: _Resources) -> ResourcesUpdate:
        return await store.update_resources(resources_id, body.resources)

    @app.get("/resources/{resources_id}")
    async def get_resources(resources_id: str) -> ResourcesUpdate:
        return await store.get_resources_by_id(resources_id)

    return app


class LightningStoreServer:
    """Serve `store` over HTTP. `await server.start()` runs it on the current event loop (the store and the server
    then share that loop); `server.start_in_thread()` runs it on a private loop and thread, for a store that only
    clients use (e.g. a runner-pool test). `url` is known once started."""

    def __init__(self, store: LightningStore, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 sweep_seconds: float = 1.0):
        self.store, self.host, self.port, self.token = store, host, port, token
        self.sweep_seconds = sweep_seconds
        self.app = build_app(store, token)
        self._server: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return http_url(self.host, self.port)

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_seconds)
            with contextlib.suppress(Exception):
                await self.store.query_rollouts(status=["preparing", "running"])

    async def start(self) -> None:
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._tasks = [asyncio.create_task(self._server.serve()), asyncio.create_task(self._sweeper())]
        while not self._server.started:
            if self._tasks[0].done():
                self._tasks[0].result()  # re-raise why it could not start (e.g. port in use)
                raise RuntimeError(f"store server on {self.host}:{self.port} stopped during start-up")
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        logger.info("store server listening on %s", self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        for task in self._tasks[1:]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def wait(self) -> None:
        """Block until the server stops (Ctrl-C, or `stop()` from another task)."""
        if self._tasks:
            await self._tasks[0]

    def start_in_thread(self, timeout: float = 30.0) -> None:
        ready, errors = threading.Event(), []
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self.start())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                errors.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()  # until stop_thread(); the loop must outlive the server task to finish stop()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="agl-store-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or errors:
            raise RuntimeError(f"store server did not start on {self.host}:{self.port}: {errors or 'timed out'}")

    def stop_thread(self) -> None:
        if self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._thread = None


_ROLLOUTS = TypeAdapter(list[Rollout])
_ATTEMPTS = TypeAdapter(list[Attempt])
_SPANS = TypeAdapter(list[Span])


class LightningStoreClient(LightningStore):
    """The `LightningStore` contract over HTTP. Safe to use from several event loops (one httpx client per loop).
    Connection errors are retried `retries` times (the request never reached the server, so retrying is safe)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0, retries: int = 3):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self._clients: dict[int, httpx.AsyncClient] = {}
        self._sync_client: httpx.Client | None = None

    def _client(self) -> httpx.AsyncClient:
        key = id(asyncio.get_running_loop())
        if key not in self._clients:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._clients[key] = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=self.timeout)
        return self._clients[key]

    async def _call(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None,
                    timeout: float | None = None) -> Any:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                response = await self._client().request(method, path, json=json, params=params,
                                                        timeout=timeout or self.timeout)
                break
            except httpx.ConnectError as exc:
                last = exc
                await asyncio.sleep(0.2 * (2**attempt))
        else:
            raise ConnectionError(f"cannot reach the store at {self.url} ({last}). Fix: start it (`agl store`) "
                                  "or pass the right URL") from last
        if response.status_code >= 400:
            raise self._error(response, method, path)
        return response.json()

    def _error(self, response: httpx.Response, method: str, path: str) -> Exception:
        """The contract exception for an error response (404 → NotFoundError, 409 → InvalidTransitionError, ...)."""
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text or response.reason_phrase
        error = {404: NotFoundError, 409: InvalidTransitionError, 400: StoreRequestError,
                 401: PermissionError}.get(response.status_code)
        if error is None:
            return StoreError(f"store {self.url} answered {response.status_code} to {method} {path}: {detail}")
        return error(detail)

    async def enqueue_rollout(self, input: Any, mode: RolloutMode | None = None, resources_id: str | None = None,
                              config: RolloutConfig | None = None, metadata: dict[str, Any] | None = None) -> Rollout:
        request = dict(input=input, mode=mode, resources_id=resources_id, config=config, metadata=metadata)
        return (await self.enqueue_many_rollouts([request]))[0]

    async def enqueue_many_rollouts(self, requests: Sequence[RolloutRequest]) -> list[Rollout]:
        body = [{k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in r.items()} for r in requests]
        return _ROLLOUTS.validate_python(await self._call("POST", "/rollouts/enqueue", {"requests": body}))

    async def dequeue_rollout(self, worker_id: str | None = None, wait_seconds: float = 0.0
                              ) -> AttemptedRollout | None:
        wait_seconds = min(max(0.0, wait_seconds), MAX_DEQUEUE_WAIT_SECONDS)
        call = asyncio.ensure_future(self._call("POST", "/rollouts/dequeue", {"worker_id": worker_id,
                                                "wait_seconds": wait_seconds}, timeout=self.timeout + wait_seconds))
        try:
            data = await asyncio.shield(call)
        except asyncio.CancelledError:
            # The server may be about to claim for us (a cancelled request does not always close the connection,
            # so it cannot tell): let the call answer (<= wait_seconds) and give back what it claimed, then cancel.
            while not call.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(call)
            if not call.cancelled() and call.exception() is None and call.result() is not None:
                await self.update_rollout(call.result()["rollout_id"], status="requeuing",
                                          metadata={"requeued_by": "dequeue cancelled"})
            raise
        return None if data is None else AttemptedRollout.model_validate(data)

    async def update_attempt(self, rollout_id: str, attempt_id: str | Literal["latest"],
                             status: AttemptStatus | None = None, heartbeat: bool = False,
                             worker_id: str | None = None, metadata: dict[str, Any] | None = None) -> Attempt:
        body = {"status": status, "heartbeat": heartbeat, "worker_id": worker_id, "metadata": metadata}
        data = await self._call("POST", f"/rollouts/{rollout_id}/attempts/{attempt_id}/update", body)
        return Attempt.model_validate(data)

    async def update_rollout(self, rollout_id: str, status: RolloutStatus | None = None,
                             metadata: dict[str, Any] | None = None, resources_id: str | None = None) -> Rollout:
        body = {"status": status, "metadata": metadata, "resources_id": resources_id}
        return Rollout.model_validate(await self._call("POST", f"/rollouts/{rollout_id}/update", body))

    async def cancel(self, rollout_id: str) -> Rollout:
        return Rollout.model_validate(await self._call("POST", f"/rollouts/{rollout_id}/cancel"))

    async def wait_for_rollouts(self, rollout_ids: Sequence[str], timeout: float | None = None) -> list[Rollout]:
        # Long poll in slices so one HTTP request never outlives the client's timeout.
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            step = 30.0 if deadline is None else max(0.0, min(30.0, deadline - loop.time()))
            data = await self._call("POST", "/rollouts/wait", {"rollout_ids": list(rollout_ids), "timeout": step},
                                    timeout=step + self.timeout)
            done = _ROLLOUTS.validate_python(data)
            if len(done) == len(rollout_ids) or (deadline is not None and loop.time() >= deadline):
                return done

    async def query_rollouts(self, status: Sequence[RolloutStatus] | None = None,
                             rollout_ids: Sequence[str] | None = None) -> list[Rollout]:
        body = {"status": list(status) if status is not None else None,
                "rollout_ids": list(rollout_ids) if rollout_ids is not None else None}
        return _ROLLOUTS.validate_python(await self._call("POST", "/rollouts/query", body))

    async def get_rollout_by_id(self, rollout_id: str) -> Rollout:
        return Rollout.model_validate(await self._call("GET", f"/rollouts/{rollout_id}"))

    async def query_attempts(self, rollout_id: str) -> list[Attempt]:
        return _ATTEMPTS.validate_python(await self._call("GET", f"/rollouts/{rollout_id}/attempts"))

    async def get_next_span_sequence_id(self, rollout_id: str, attempt_id: str) -> int:
        return int(await self._call("POST", f"/rollouts/{rollout_id}/attempts/{attempt_id}/next_span_sequence_id"))

    def reserve_span_sequence_id(self, rollout_id: str, attempt_id: str) -> int:
        if self._sync_client is None:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._sync_client = httpx.Client(base_url=self.url, headers=headers, timeout=self.timeout)
        path = f"/rollouts/{rollout_id}/attempts/{attempt_id}/next_span_sequence_id"
        for attempt in range(self.retries + 1):
            try:
                response = self._sync_client.post(path)
                break
            except httpx.ConnectError:
                if attempt == self.retries:
                    raise ConnectionError(f"cannot reach the store at {self.url}") from None
                time.sleep(0.2 * (2**attempt))
        if response.status_code >= 400:
            raise self._error(response, "POST", path)
        return int(response.json())

    async def add_span(self, span: Span) -> Span:
        return (await self.add_spans([span]))[0]

    async def add_spans(self, spans: Sequence[Span]) -> list[Span]:
        body = {"spans": [s.model_dump(mode="json") for s in spans]}
        return _SPANS.validate_python(await self._call("POST", "/spans", body))

    async def query_spans(self, rollout_id: str, attempt_id: str | Literal["latest"] | None = "latest") -> list[Span]:
        params = {"attempt_id": "all" if attempt_id is None else attempt_id}
        return _SPANS.validate_python(await self._call("GET", f"/rollouts/{rollout_id}/spans", params=params))

    async def add_resources(self, resources: NamedResources) -> ResourcesUpdate:
        body = {"resources": {k: v if isinstance(v, dict) else v.model_dump() for k, v in resources.items()}}
        return ResourcesUpdate.model_validate(await self._call("POST", "/resources", body))

    async def update_resources(self, resources_id: str, resources: NamedResources) -> ResourcesUpdate:
        body = {"resources": {k: v if isinstance(v, dict) else v.model_dump() for k, v in resources.items()}}
        return ResourcesUpdate.model_validate(await self._call("PUT", f"/resources/{resources_id}", body))

    async def get_latest_resources(self) -> ResourcesUpdate | None:
        data = await self._call("GET", "/resources/latest")
        return None if data is None else ResourcesUpdate.model_validate(data)

    async def get_resources_by_id(self, resources_id: str) -> ResourcesUpdate:
        return ResourcesUpdate.model_validate(await self._call("GET", f"/resources/{resources_id}"))

    async def close(self) -> None:
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None
        clients, self._clients = self._clients, {}
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
