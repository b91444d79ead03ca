"""`LightningStoreClient`: the `LightningStore` contract over HTTP, safe to retry on a flaky network.

Where this sits: in runner processes (dequeue, attempt reports, tracer spans) and in the LLM proxy (`llm.call`
spans), talking to a `LightningStoreServer` (`store/server.py`) in the trainer's process or on another machine.

Transport: aiohttp, one session (connection pool) per event loop. Measured against httpx on this 2-core machine
(8 concurrent callers, the store served by another process): about 4x the requests per second end to end, since
httpx's pool bookkeeping costs more CPU per request than the server spends answering it.

Retries: every request is retried on every transport failure — connect, read or write errors, a connection the
server closed mid-answer, timeouts — and on 502/503/504, with exponential back-off (50 ms doubling to 2 s, with
jitter) until `retry_deadline` seconds have passed since the call began; then it raises `StoreUnavailableError`,
naming the store URL, the request and the last error. Mutating calls are safe to repeat because each logical call
carries one idempotency key (`Idempotency-Key` header, the same on every retry): the store applies it once and
answers repeats with the first answer (`store/idempotency.py`). `retries_made` counts the retries of this client.

Ids travel as single URL path segments, percent-encoded (`_q`). A resources id is checked against the store's rule
(`store/validation.py`) before it is sent, and the reserved names (`latest`, `.`, `..`, which would reach another
route) are never read through `/resources/<id>`.

Keep-alive: the pool drops idle connections after `KEEP_ALIVE_SECONDS` (30 s), well before the server does (75 s),
so a request is never sent on a connection the server is closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
import orjson
from pydantic import BaseModel, TypeAdapter
from yarl import URL

from agentlightning.store.base import (
    InvalidTransitionError,
    LightningStore,
    NotFoundError,
    RolloutRequest,
    StoreError,
    StoreRequestError,
    StoreUnavailableError,
)
from agentlightning.store.idempotency import KEY_HEADER, new_key
from agentlightning.store.server import MAX_DEQUEUE_WAIT_SECONDS
from agentlightning.store.validation import RESERVED_RESOURCES_IDS, check_resources_id, check_wait_seconds
from agentlightning.types import (
    Attempt,
    AttemptedRollout,
    AttemptStatus,
    NamedResources,
    ResourcesUpdate,
    Rollout,
    RolloutConfig,
    RolloutStatus,
    Span,
)

__all__ = ["KEEP_ALIVE_SECONDS", "LightningStoreClient"]

logger = logging.getLogger(__name__)

KEEP_ALIVE_SECONDS = 30.0  # below the server's 75 s (store/server.py): the client always closes idle connections
_GIVE_UP_AFTER_POLL_SECONDS = 5.0
_RETRY_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)
_RETRY_STATUS = frozenset({502, 503, 504})
_FIRST_DELAY, _MAX_DELAY = 0.05, 2.0

_ROLLOUTS = TypeAdapter(list[Rollout])
_ATTEMPTS = TypeAdapter(list[Attempt])
_SPANS = TypeAdapter(list[Span])


def _q(value: str) -> str:
    """An id as one URL path segment (`policy#1`, `v?x=1` and `a/b` stay what they are)."""
    return quote(value, safe="")


def _dump(resources: NamedResources) -> dict[str, Any]:
    return {k: v if isinstance(v, dict) else v.model_dump() for k, v in resources.items()}


class _Retryable(Exception):
    """A 502/503/504 answer: the server (or a gateway in front of it) could not handle the request just now."""


class LightningStoreClient(LightningStore):
    """The `LightningStore` contract over HTTP. Safe to use from several event loops (one aiohttp session per loop).
    timeout: seconds one HTTP request may take; retry_deadline: seconds one call may spend retrying transport
    failures before it raises `StoreUnavailableError`."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0, retry_deadline: float = 30.0):
        if retry_deadline < 0:
            raise ValueError(f"LightningStoreClient(retry_deadline={retry_deadline}) must be >= 0 (seconds one call "
                             "may spend retrying; 0 = a single try)")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retry_deadline = retry_deadline
        self.retries_made = 0
        self._clients: dict[int, aiohttp.ClientSession] = {}

    # ------------------------------------------------------------------ transport
    def _client(self) -> aiohttp.ClientSession:
        key = id(asyncio.get_running_loop())
        session = self._clients.get(key)
        if session is None or session.closed:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEP_ALIVE_SECONDS)
            session = self._clients[key] = aiohttp.ClientSession(headers=headers, connector=connector,
                                                                 timeout=aiohttp.ClientTimeout(total=self.timeout))
            # aiohttp quietly resends a PUT/GET once when a kept-alive connection drops; every retry here goes
            # through `_call` instead (its back-off, deadline and `retries_made`), so that one is switched off
            session._retry_connection = False  # type: ignore[attr-defined]  # (no public switch in aiohttp 3.14)
        return session

    def _next_delay(self, tries: int, started: float, method: str, path: str, exc: Exception,
                    deadline: float | None = None) -> float:
        """Seconds to wait before the next try, or StoreUnavailableError when that would pass the deadline."""
        deadline = self.retry_deadline if deadline is None else deadline
        delay = min(_MAX_DELAY, _FIRST_DELAY * 2 ** (tries - 1)) * random.uniform(0.5, 1.0)
        if time.monotonic() + delay - started > deadline:
            raise StoreUnavailableError(
                f"the store at {self.url} did not answer {method} {path} within {deadline:g} s ({tries} "
                f"tries; last error: {type(exc).__name__}: {exc}). Check that the store server is running (the "
                "trainer's process, or `agl store`) and reachable from this machine at that address, or give the "
                "client a longer retry_deadline") from exc
        self.retries_made += 1
        logger.debug("store %s %s failed (%r); retry %d in %.2f s", method, path, exc, tries, delay)
        return delay

    def _check(self, status: int, body: bytes, method: str, path: str) -> Any:
        if status in _RETRY_STATUS:
            raise _Retryable(f"HTTP {status}: {body[:200].decode(errors='replace')}")
        if status >= 400:
            raise self._error(status, body, method, path)
        return orjson.loads(body)

    async def _call(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None,
                    timeout: float | None = None, key: str | None = None, content: bytes | None = None) -> Any:
        """One logical call: the request, retried on transport failures until the deadline (a mutating call sends
        its idempotency `key` with every try). `content`: a body already encoded as JSON (instead of `json`)."""
        headers = {KEY_HEADER: key} if key is not None else {}
        if json is not None:
            content = orjson.dumps(json, option=orjson.OPT_NON_STR_KEYS)
        if content is not None:
            headers["content-type"] = "application/json"
        url = URL(self.url + path, encoded=True)  # ids in `path` are percent-encoded already (`_q`)
        request_timeout = aiohttp.ClientTimeout(total=timeout or self.timeout)
        started, tries = time.monotonic(), 0
        while True:
            tries += 1
            try:
                async with self._client().request(method, url, data=content, params=params, headers=headers,
                                                  timeout=request_timeout) as response:
                    status, body = response.status, await response.read()
                return self._check(status, body, method, path)
            except (*_RETRY_ERRORS, _Retryable) as exc:
                await asyncio.sleep(self._next_delay(tries, started, method, path, exc))

    def _error(self, status: int, body: bytes, method: str, path: str) -> Exception:
        """The contract exception for an error response (404 → NotFoundError, 409 → InvalidTransitionError, ...)."""
        text = body.decode(errors="replace")
        try:
            detail = orjson.loads(body).get("detail", text)
        except (orjson.JSONDecodeError, AttributeError):
            detail = text or f"HTTP {status}"
        error = {404: NotFoundError, 409: InvalidTransitionError, 400: StoreRequestError,
                 401: PermissionError}.get(status)
        if error is None:
            return StoreError(f"store {self.url} answered {status} to {method} {path}: {detail}")
        return error(detail)

    # ------------------------------------------------------------------ rollouts
    async def enqueue_many_rollouts(self, requests: Sequence[RolloutRequest], idempotency_key: str | None = None
                                    ) -> list[Rollout]:
        # (a config is validated here, as the in-process stores do: a bad one names its field, and inf/NaN never
        # reach the JSON encoder, which would refuse them without saying which field)
        body = [{k: RolloutConfig.model_validate(v).model_dump() if k == "config" and isinstance(v, dict)
                 else v.model_dump() if isinstance(v, BaseModel) else v for k, v in r.items()} for r in requests]
        return _ROLLOUTS.validate_python(await self._call("POST", "/rollouts/enqueue", {"requests": body},
                                                          key=idempotency_key or new_key()))

    async def dequeue_rollout(self, worker_id: str | None = None, wait_seconds: float = 0.0,
                              idempotency_key: str | None = None) -> AttemptedRollout | None:
        wait_seconds = min(max(0.0, wait_seconds), MAX_DEQUEUE_WAIT_SECONDS)
        call = asyncio.ensure_future(self._call("POST", "/rollouts/dequeue", {"worker_id": worker_id,
                                                "wait_seconds": wait_seconds}, timeout=self.timeout + wait_seconds,
                                                key=idempotency_key or new_key()))
        try:
            data = await asyncio.shield(call)
        except asyncio.CancelledError:
            # The server may be about to claim for us (a cancelled request does not always close the connection,
            # so it cannot tell): let the call answer (<= wait_seconds) and give back what it claimed, then cancel.
            # With the store away that answer never comes: stop waiting a few seconds after the long poll's end
            # (a claim it made is given back by the server's grace for vanished clients).
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait_seconds + _GIVE_UP_AFTER_POLL_SECONDS
            while not call.done() and loop.time() < deadline:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({call}, timeout=deadline - loop.time())
            if not call.done():
                call.cancel()
                raise
            if not call.cancelled() and call.exception() is None and call.result() is not None:
                await self.update_rollout(call.result()["rollout_id"], status="requeuing",
                                          metadata={"requeued_by": "dequeue cancelled"})
            raise
        return None if data is None else AttemptedRollout.model_validate(data)

    async def update_attempt(self, rollout_id: str, attempt_id: str | Literal["latest"],
                             status: AttemptStatus | None = None, heartbeat: bool = False,
                             worker_id: str | None = None, metadata: dict[str, Any] | None = None,
                             idempotency_key: str | None = None) -> Attempt:
        body = {"status": status, "heartbeat": heartbeat, "worker_id": worker_id, "metadata": metadata}
        data = await self._call("POST", f"/rollouts/{_q(rollout_id)}/attempts/{_q(attempt_id)}/update", body,
                                key=idempotency_key or new_key())
        return Attempt.model_validate(data)

    async def update_rollout(self, rollout_id: str, status: RolloutStatus | None = None,
                             metadata: dict[str, Any] | None = None, resources_id: str | None = None,
                             idempotency_key: str | None = None) -> Rollout:
        body = {"status": status, "metadata": metadata, "resources_id": resources_id}
        return Rollout.model_validate(await self._call("POST", f"/rollouts/{_q(rollout_id)}/update", body,
                                                       key=idempotency_key or new_key()))

    async def wait_for_rollouts(self, rollout_ids: Sequence[str], timeout: float | None = None) -> list[Rollout]:
        check_wait_seconds("timeout", timeout, "wait_for_rollouts")
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
        return Rollout.model_validate(await self._call("GET", f"/rollouts/{_q(rollout_id)}"))

    async def query_attempts(self, rollout_id: str) -> list[Attempt]:
        return _ATTEMPTS.validate_python(await self._call("GET", f"/rollouts/{_q(rollout_id)}/attempts"))

    # ------------------------------------------------------------------ spans
    async def get_next_span_sequence_id(self, rollout_id: str, attempt_id: str) -> int:
        return int(await self._call("POST", f"/rollouts/{_q(rollout_id)}/attempts/{_q(attempt_id)}"
                                            "/next_span_sequence_id"))

    async def add_spans(self, spans: Sequence[Span], idempotency_key: str | None = None) -> list[Span]:
        spans = list(spans)
        body = b'{"spans":' + _SPANS.dump_json(spans) + b"}"
        numbers = await self._call("POST", "/spans", content=body, key=idempotency_key or new_key())
        # the server answers the sequence ids only: a stored span is the sent one with its number
        return [s if s.sequence_id == n else s.model_copy(update={"sequence_id": n}) for s, n in zip(spans, numbers,
                                                                                                    strict=True)]

    async def query_spans(self, rollout_id: str, attempt_id: str | Literal["latest"] | None = "latest") -> list[Span]:
        params = {"attempt_id": "all" if attempt_id is None else attempt_id}
        return _SPANS.validate_python(await self._call("GET", f"/rollouts/{_q(rollout_id)}/spans", params=params))

    # ------------------------------------------------------------------ resources
    async def add_resources(self, resources: NamedResources, idempotency_key: str | None = None) -> ResourcesUpdate:
        return ResourcesUpdate.model_validate(await self._call("POST", "/resources", {"resources": _dump(resources)},
                                                               key=idempotency_key or new_key()))

    async def update_resources(self, resources_id: str, resources: NamedResources,
                               idempotency_key: str | None = None) -> ResourcesUpdate:
        check_resources_id(resources_id)  # (the server checks too; an id like '..' would not even reach its route)
        data = await self._call("PUT", f"/resources/{_q(resources_id)}", {"resources": _dump(resources)},
                                key=idempotency_key or new_key())
        return ResourcesUpdate.model_validate(data)

    async def get_latest_resources(self) -> ResourcesUpdate | None:
        data = await self._call("GET", "/resources/latest")
        return None if data is None else ResourcesUpdate.model_validate(data)

    async def get_resources_by_id(self, resources_id: str) -> ResourcesUpdate:
        if resources_id in RESERVED_RESOURCES_IDS:  # /resources/latest is another route; '.', '..' are path steps
            raise NotFoundError(f"resources {resources_id!r} do not exist in this store ({resources_id!r} is a "
                                "reserved name, never a stored id; get_latest_resources() reads the newest)")
        return ResourcesUpdate.model_validate(await self._call("GET", f"/resources/{_q(resources_id)}"))

    async def close(self) -> None:
        """Close this client's connection pools (each loop's: one on another, closed loop cannot be awaited and is
        dropped)."""
        sessions, self._clients = self._clients, {}
        for session in sessions.values():
            with contextlib.suppress(Exception):
                await session.close()
