"""`LightningStoreServer`: any store backend served over HTTP (FastAPI + uvicorn); `store/client.py` is its client.

Where this sits: between processes. The trainer owns a store and serves it; runner processes (and the LLM proxy,
when it runs as its own process) talk to it through `LightningStoreClient`, which implements the same
`LightningStore` contract, so code never knows which side of the wire it is on.

Wire format: JSON bodies of the pydantic models in `agentlightning.types`, encoded and decoded by pydantic's compiled
core (`TypeAdapter.dump_json` / `validate_json`), never through FastAPI's response models, which validate each answer
again. `POST /spans` answers only the stored spans' `sequence_id`s (the client rebuilds the spans: a stored span is
the sent one with its number), so a batch of token ids crosses the wire once. Errors map to status codes and back:
`NotFoundError` ↔ 404, `InvalidTransitionError` ↔ 409, a malformed request ↔ 400 (the validation message in
`detail`, naming the field: a number out of range, such as a span `sequence_id` beyond SQLite's 64-bit INTEGER or a
wait that is negative or not finite, is a 400 and never reaches the backend), a missing/wrong token ↔ 401. Mutating
routes read the `Idempotency-Key` header and hand it to the backend (`store/idempotency.py`): a retried request is
answered from the first answer and applied once. The server binds to 127.0.0.1 unless told otherwise; with `token`
set, every path but `/health` needs `Authorization: Bearer <token>` — the API, `/docs`, `/redoc`, `/openapi.json` and
unknown paths alike (checked in front of the app, `_TokenGate`). It also sweeps timeouts every `sweep_seconds`, so
expired attempts are requeued even when nobody asks.

Run one: `agl store --backend sqlite --path runs/store.sqlite --port 4747`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import reprlib
import threading
from collections.abc import Sequence
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from agentlightning.net import EmbeddedServer, http_url
from agentlightning.store.base import InvalidTransitionError, LightningStore, NotFoundError, StoreRequestError
from agentlightning.store.idempotency import KEY_HEADER
from agentlightning.types import (
    Attempt,
    AttemptedRollout,
    AttemptStatus,
    NamedResources,
    ResourcesUpdate,
    Rollout,
    RolloutStatus,
    Span,
)

__all__ = ["KEEP_ALIVE_SECONDS", "LightningStoreServer", "MAX_DEQUEUE_WAIT_SECONDS", "build_app"]

logger = logging.getLogger(__name__)

# the longest one long-polling dequeue waits on the server (a runner stopping awaits its pending dequeue)
MAX_DEQUEUE_WAIT_SECONDS = 10.0
# Idle connections stay open longer than any client's pool keeps them (LightningStoreClient: 30 s), so it is always
# the client that closes an idle connection: a request never races the server closing it (uvicorn's default is 5 s,
# httpx's too, and that race was a runner-killing `ReadError` in `make demo`).
KEEP_ALIVE_SECONDS = 75
# A long-poll dequeue whose client vanished after a claim keeps that claim this long for a retry with the same
# idempotency key (a network blip), then gives it back (a killed process).
GIVE_BACK_GRACE_SECONDS = 30.0

Key = Annotated[str | None, Header(alias=KEY_HEADER)]


# ---------------------------------------------------------------------------------------------------- request bodies
class _Enqueue(BaseModel):
    requests: list[dict[str, Any]]


class _Dequeue(BaseModel):
    worker_id: str | None = None
    wait_seconds: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)  # (capped at MAX_DEQUEUE_WAIT_SECONDS)


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
    timeout: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)


class _Query(BaseModel):
    status: list[RolloutStatus] | None = None
    rollout_ids: list[str] | None = None


class _Spans(BaseModel):
    spans: list[Span]


class _Resources(BaseModel):
    resources: NamedResources


_SPANS_BODY = TypeAdapter(_Spans)
_ROLLOUT = TypeAdapter(Rollout)
_ROLLOUTS = TypeAdapter(list[Rollout])
_CLAIM = TypeAdapter(AttemptedRollout | None)
_ATTEMPT = TypeAdapter(Attempt)
_ATTEMPTS = TypeAdapter(list[Attempt])
_SPANS = TypeAdapter(list[Span])
_RESOURCES = TypeAdapter(ResourcesUpdate | None)


def _json(adapter: TypeAdapter[Any], value: Any) -> Response:
    """`value` as JSON, serialized once by pydantic's core (no second validation)."""
    return Response(adapter.dump_json(value), media_type="application/json")


def _describe(errors: Sequence[Any]) -> str:
    """A request's validation errors as one line: each field's path, what was wrong, the value sent; then the fix."""
    parts = []
    for e in errors:
        got = f" (got {reprlib.repr(e['input'])})" if "input" in e and e.get("type") != "missing" else ""
        parts.append(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}{got}")
    return ("; ".join(parts) + ". Fix: send the field(s) named above within their bounds (the request models in "
            "agentlightning/store/server.py, the types in agentlightning/types.py)")


def _error(status: int, exc: BaseException) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": str(exc), "error": type(exc).__name__})


_UNAUTHORIZED = ("this store needs a token: send 'Authorization: Bearer <token>' "
                 "(LightningStoreClient(url, token=...) or AGL_STORE_TOKEN)")


class _TokenGate:
    """ASGI middleware: with a token set, every path but `/health` needs `Authorization: Bearer <token>` (401 else).
    In front of the whole app, so FastAPI's own routes (`/docs`, `/redoc`, `/openapi.json`) and unknown paths are
    covered too, not only the routes declared here."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/health":
            given = next((value for name, value in scope.get("headers", ()) if name == b"authorization"), b"")
            if not hmac.compare_digest(given, self.expected):
                await JSONResponse(status_code=401, content={"detail": _UNAUTHORIZED})(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _GiveBacks:
    """Claims whose long-poll client vanished, given back after a grace unless a retry with their key fetches them."""

    def __init__(self, store: LightningStore) -> None:
        self.store = store
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def fetched(self, key: str | None) -> None:
        if key is not None and (task := self.tasks.pop(key, None)) is not None:
            task.cancel()

    def schedule(self, key: str, claimed: AttemptedRollout, grace: float) -> None:
        self.tasks[key] = asyncio.create_task(self._later(key, claimed, grace))

    async def _later(self, key: str, claimed: AttemptedRollout, grace: float) -> None:
        await asyncio.sleep(grace)
        self.tasks.pop(key, None)
        latest = await self.store.get_latest_attempt(claimed.rollout_id)
        if latest is not None and latest.attempt_id == claimed.attempt.attempt_id and latest.status == "preparing":
            await self.store.update_rollout(claimed.rollout_id, status="requeuing",
                                            metadata={"requeued_by": "dequeue client disconnected"})


def build_app(store: LightningStore, token: str | None = None,
              give_back_grace: float = GIVE_BACK_GRACE_SECONDS) -> FastAPI:
    """The FastAPI app exposing `store`; routes mirror the `LightningStore` methods one to one. With `token`, every
    path but `/health` needs it (`_TokenGate`)."""
    app = FastAPI(title="agentlightning store")
    if token is not None:
        app.add_middleware(_TokenGate, token=token)
    give_backs = app.state.give_backs = _GiveBacks(store)

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return _error(404, exc)

    @app.exception_handler(InvalidTransitionError)
    async def _conflict(_: Request, exc: InvalidTransitionError) -> JSONResponse:
        return _error(409, exc)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": _describe(exc.errors()),
                                                      "error": "RequestValidationError"})

    @app.exception_handler(ValidationError)
    async def _bad_value(_: Request, exc: ValidationError) -> JSONResponse:
        return _error(400, exc)

    @app.exception_handler(StoreRequestError)
    async def _bad_store_request(_: Request, exc: StoreRequestError) -> JSONResponse:
        return _error(400, exc)

    @app.exception_handler(TypeError)
    async def _bad_args(_: Request, exc: TypeError) -> JSONResponse:
        return _error(400, exc)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/rollouts/enqueue")
    async def enqueue(body: _Enqueue, key: Key = None) -> Response:
        return _json(_ROLLOUTS, await store.enqueue_many_rollouts(body.requests, idempotency_key=key))

    @app.post("/rollouts/dequeue")
    async def dequeue(body: _Dequeue, request: Request, key: Key = None) -> Response:
        give_backs.fetched(key)
        claimed = await store.dequeue_rollout(body.worker_id, min(body.wait_seconds, MAX_DEQUEUE_WAIT_SECONDS),
                                              idempotency_key=key)
        if claimed is not None:
            await asyncio.sleep(0)  # one loop pass, so a connection the client closed meanwhile is seen as closed
        if claimed is not None and await request.is_disconnected():  # the long poll's client left meanwhile
            if key is not None:  # it may come back with the same key (a blip): keep the claim for it a while
                give_backs.schedule(key, claimed, give_back_grace)
            else:
                await store.update_rollout(claimed.rollout_id, status="requeuing",
                                           metadata={"requeued_by": "dequeue client disconnected"})
            return _json(_CLAIM, None)
        return _json(_CLAIM, claimed)

    @app.post("/rollouts/query")
    async def query(body: _Query) -> Response:
        return _json(_ROLLOUTS, await store.query_rollouts(body.status, body.rollout_ids))

    @app.post("/rollouts/wait")
    async def wait(body: _Wait) -> Response:
        return _json(_ROLLOUTS, await store.wait_for_rollouts(body.rollout_ids, body.timeout))

    @app.get("/rollouts/{rollout_id}")
    async def get_rollout(rollout_id: str) -> Response:
        return _json(_ROLLOUT, await store.get_rollout_by_id(rollout_id))

    @app.post("/rollouts/{rollout_id}/update")
    async def update_rollout(rollout_id: str, body: _UpdateRollout, key: Key = None) -> Response:
        return _json(_ROLLOUT, await store.update_rollout(rollout_id, body.status, body.metadata, body.resources_id,
                                                          idempotency_key=key))

    @app.post("/rollouts/{rollout_id}/cancel")
    async def cancel(rollout_id: str, key: Key = None) -> Response:
        return _json(_ROLLOUT, await store.cancel(rollout_id, idempotency_key=key))

    @app.get("/rollouts/{rollout_id}/attempts")
    async def attempts(rollout_id: str) -> Response:
        return _json(_ATTEMPTS, await store.query_attempts(rollout_id))

    @app.post("/rollouts/{rollout_id}/attempts/{attempt_id}/update")
    async def update_attempt(rollout_id: str, attempt_id: str, body: _UpdateAttempt, key: Key = None) -> Response:
        return _json(_ATTEMPT, await store.update_attempt(rollout_id, attempt_id, body.status, body.heartbeat,
                                                          body.worker_id, body.metadata, idempotency_key=key))

    @app.post("/rollouts/{rollout_id}/attempts/{attempt_id}/next_span_sequence_id")
    async def next_sequence_id(rollout_id: str, attempt_id: str) -> int:
        return await store.get_next_span_sequence_id(rollout_id, attempt_id)

    @app.get("/rollouts/{rollout_id}/spans")
    async def spans(rollout_id: str, attempt_id: str = "latest") -> Response:
        return _json(_SPANS, await store.query_spans(rollout_id, None if attempt_id == "all" else attempt_id))

    @app.post("/spans")
    async def add_spans(request: Request, key: Key = None) -> Response:
        try:  # (the body parsed and checked in one pass of pydantic's core, not json.loads and then the model)
            body = _SPANS_BODY.validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
        stored = await store.add_spans(body.spans, idempotency_key=key)
        return Response(b"[" + b",".join(b"%d" % (s.sequence_id or 0) for s in stored) + b"]",
                        media_type="application/json")

    @app.post("/resources")
    async def add_resources(body: _Resources, key: Key = None) -> Response:
        return _json(_RESOURCES, await store.add_resources(body.resources, idempotency_key=key))

    @app.get("/resources/latest")
    async def latest_resources() -> Response:
        return _json(_RESOURCES, await store.get_latest_resources())

    @app.put("/resources/{resources_id}")
    async def update_resources(resources_id: str, body: _Resources, key: Key = None) -> Response:
        return _json(_RESOURCES, await store.update_resources(resources_id, body.resources, idempotency_key=key))

    @app.get("/resources/{resources_id}")
    async def get_resources(resources_id: str) -> Response:
        return _json(_RESOURCES, await store.get_resources_by_id(resources_id))

    return app


class LightningStoreServer:
    """Serve `store` over HTTP. `await server.start()` runs it on the current event loop (the store and the server
    then share that loop); `server.start_in_thread()` runs it on a private loop and thread, for a store that only
    clients use (e.g. a runner-pool test). `url` is known once started."""

    def __init__(self, store: LightningStore, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 sweep_seconds: float = 1.0, give_back_grace: float = GIVE_BACK_GRACE_SECONDS):
        self.store, self.host, self.port, self.token = store, host, port, token
        self.sweep_seconds = sweep_seconds
        self.app = build_app(store, token, give_back_grace)
        self._server: EmbeddedServer | None = None
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
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", lifespan="off",
                                timeout_keep_alive=KEEP_ALIVE_SECONDS)
        self._server = EmbeddedServer(config)
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
        for task in [*self._tasks[1:], *self.app.state.give_backs.tasks.values()]:
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
