"""`ProxyApp`: the LLM proxy's request handling — its routes and all the state they use, in one object.

`LLMProxy` (`server.py`) owns one and serves `app.asgi` with uvicorn; nothing here reaches back into the server.

Where this sits: task → store → runner → agent → **proxy** → vLLM → spans → adapter → verl. Agents get a base URL
`<proxy>/rollout/{rollout_id}/attempt/{attempt_id}/v1` (from `ProxyLLM.with_attempted_rollout`), so every call is
attributed by URL alone. Routes (each also under that prefix):

- `POST /v1/chat/completions`, `POST /v1/completions`: forwarded to a replica (see `backends.py`), streamed or not;
  calls under a rollout prefix are recorded as one `llm.call` span each (see `recording.py`); calls on the plain
  `/v1` routes are served but not recorded.
- `GET /v1/models`: the proxy's `model_list`, else what the first reachable replica says.
- `GET /health`: no key needed; replica counters.

Errors (OpenAI shape `{"error": {"message", "type", "code"}}`): 400 malformed body (the validation message), 401
missing/wrong API key, 404 unknown rollout/attempt (named) or model not in `model_list`, 502 every replica failed
(each try and its cause), 502 a replica answered with something the proxy cannot use (a body that is not JSON, an
error object, no `choices`, ...: the message names the replica, its HTTP status and what was wrong; the replica is
avoided for its cooldown, like one answering 5xx; not retried, as the generation may have run), upstream 4xx passed
through unchanged. Every failed call under a rollout prefix is recorded as an error span.

Recording: a call's span is stored (through the store's `SpanWriter`: concurrent calls' spans go out as one
`add_spans`, `store/span_writer.py`) before the call is answered, so whatever the agent records after the answer is
numbered after the call. State: `store`, `pool` (replicas), the request rules (`model_list`, `api_key`,
`request_logprobs`, `keep_token_ids`, `upstream_headers`), `client` (the upstream httpx client, opened on the
serving loop by `open()`), `known_attempts` (attempts already checked in the store) and `background` (span writes
of streams whose client left).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from agentlightning.proxy.backends import AllBackendsFailedError, BackendPool
from agentlightning.proxy.recording import (
    ClientWants,
    StreamAccumulator,
    build_span,
    prepare_upstream_body,
    response_problem,
    strip_chunk,
    strip_response,
    summarize_response,
)
from agentlightning.store.base import LightningStore, NotFoundError
from agentlightning.store.span_writer import SpanWriter

try:  # orjson is ~5x faster on the hot path; it ships with vLLM and litellm, the stdlib is the fallback
    import orjson as _json_impl

    _dumps = _json_impl.dumps
    _loads = _json_impl.loads
    _DecodeError: type[Exception] = _json_impl.JSONDecodeError
except ImportError:  # pragma: no cover - depends on the environment
    import json as _json_impl

    def _dumps(obj: Any) -> bytes:
        return _json_impl.dumps(obj, separators=(",", ":")).encode()

    _loads = _json_impl.loads
    _DecodeError = ValueError

__all__ = ["ProxyApp", "ProxyHTTPError", "check_model_list", "validate_body"]

logger = logging.getLogger(__name__)

_ENDPOINTS = {"chat/completions": "chat.completions", "completions": "completions"}
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                502: "upstream_error", 503: "store_unavailable"}


class ProxyHTTPError(Exception):
    """An error answer of the proxy (status + message)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _error_response(status: int, message: str) -> Response:
    body = {"error": {"message": message, "type": _ERROR_TYPES.get(status, "error"), "code": status}}
    return Response(_dumps(body), status_code=status, media_type="application/json")


def validate_body(raw: bytes, endpoint: str) -> dict[str, Any]:
    """Parse and check a request body; raises ProxyHTTPError(400) naming the field, the rule and the fix."""
    try:
        body = _loads(raw)
    except _DecodeError as exc:
        raise ProxyHTTPError(400, f"request body is not valid JSON ({exc}). Fix: send a JSON object") from None
    if not isinstance(body, dict):
        raise ProxyHTTPError(400, f"request body must be a JSON object, got {type(body).__name__}")
    if endpoint == "chat.completions":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ProxyHTTPError(400, f"'messages' must be a non-empty list of {{'role', 'content'}} objects, got "
                                      f"{messages!r:.100}")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise ProxyHTTPError(400, f"messages[{i}] must be an object with a string 'role', got {message!r:.100}")
    else:
        prompt = body.get("prompt")
        if not (isinstance(prompt, str) or (isinstance(prompt, list) and prompt)):
            raise ProxyHTTPError(400, f"'prompt' must be a string, a list of strings or a list of token ids, got "
                                      f"{prompt!r:.100}")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ProxyHTTPError(400, f"'stream' must be true or false, got {body['stream']!r}")
    if "tools" in body and body["tools"] is not None and not isinstance(body["tools"], list):
        raise ProxyHTTPError(400, f"'tools' must be a list of tool objects, got {type(body['tools']).__name__}")
    if "model" in body and not isinstance(body["model"], str):
        raise ProxyHTTPError(400, f"'model' must be a string, got {body['model']!r:.100}")
    return body


def check_model_list(model_list: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """`{client name: {"model": upstream name, "sampling_params": {...}}}` with defaults filled in; ValueError naming
    the entry otherwise."""
    checked: dict[str, dict[str, Any]] = {}
    for name, entry in (model_list or {}).items():
        entry = dict(entry or {})
        unknown = set(entry) - {"model", "sampling_params"}
        if unknown:
            raise ValueError(f"model_list[{name!r}] has unknown keys {sorted(unknown)}; allowed: 'model' (upstream "
                             "served name) and 'sampling_params' (default request fields)")
        if not isinstance(entry.get("sampling_params", {}), dict):
            raise ValueError(f"model_list[{name!r}]['sampling_params'] must be a dict, e.g. {{'temperature': 0.7}}")
        checked[str(name)] = {"model": entry.get("model", name), "sampling_params": entry.get("sampling_params", {})}
    return checked


_MAX_KNOWN_ATTEMPTS = 100_000


class ProxyApp:
    """The proxy's routes and state (see the module docstring); `asgi` is the app to serve."""

    def __init__(self, store: LightningStore, pool: BackendPool, model_list: Mapping[str, Any] | None = None,
                 api_key: str | None = None, request_logprobs: bool = False, keep_token_ids: bool = False,
                 upstream_api_key: str | None = None) -> None:
        self.store = store
        self.pool = pool
        self.model_list = check_model_list(model_list)
        self.api_key = api_key
        self.request_logprobs = request_logprobs
        self.keep_token_ids = keep_token_ids
        self.upstream_headers = {"content-type": "application/json"}
        if upstream_api_key:
            self.upstream_headers["authorization"] = f"Bearer {upstream_api_key}"
        self.client: httpx.AsyncClient | None = None
        self.known_attempts: set[tuple[str, str]] = set()
        self.background: set[asyncio.Task[Any]] = set()
        self.asgi = self._routes()

    # ------------------------------------------------------------------ lifecycle (on the serving loop)
    def open(self, client: httpx.AsyncClient) -> None:
        """Start serving with `client` for the upstream calls."""
        self.client = client

    async def aclose(self) -> None:
        """Finish the background span writes and close the upstream client."""
        for task in list(self.background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    def _upstream(self) -> httpx.AsyncClient:
        if self.client is None:
            raise ProxyHTTPError(503, "the proxy is not serving (no upstream client): call LLMProxy.start() first")
        return self.client

    # ------------------------------------------------------------------ request rules
    def apply_model_defaults(self, body: dict[str, Any]) -> str | None:
        """Map the client's model name to the upstream one and merge default sampling params (in place).
        Returns the client's name when the response must say it instead of the upstream name, else None."""
        if not self.model_list:
            return None
        name = body.get("model")
        if name is None and len(self.model_list) == 1:
            name = next(iter(self.model_list))
        if name not in self.model_list:
            raise ProxyHTTPError(404, f"model {name!r} is not served by this proxy; available: "
                                      f"{sorted(self.model_list)}")
        entry = self.model_list[name]
        for key, value in entry["sampling_params"].items():
            body.setdefault(key, value)
        body["model"] = entry["model"]
        return name if entry["model"] != name else None

    def check_key(self, request: Request) -> None:
        if self.api_key is None:
            return
        given = request.headers.get("authorization", "")
        given = given[7:] if given[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise ProxyHTTPError(401, "this proxy needs an API key: send 'Authorization: Bearer <key>' "
                                      "(OpenAI clients: api_key=...; ProxyLLM carries it as api_key)")

    async def check_rollout(self, rollout_id: str, attempt_id: str) -> None:
        if (rollout_id, attempt_id) in self.known_attempts:
            return
        try:
            attempts = await self.store.query_attempts(rollout_id)
        except NotFoundError:
            raise ProxyHTTPError(404, f"rollout {rollout_id!r} does not exist in the store; this URL only serves "
                                      "rollouts the trainer enqueued. Fix: use the URL from "
                                      "ProxyLLM.with_attempted_rollout(rollout)") from None
        except Exception as exc:  # noqa: BLE001 - store down, wrong URL
            raise ProxyHTTPError(503, f"cannot check rollout {rollout_id!r} in the store ({exc})") from exc
        if not any(a.attempt_id == attempt_id for a in attempts):
            raise ProxyHTTPError(404, f"attempt {attempt_id!r} of rollout {rollout_id!r} does not exist (known: "
                                      f"{[a.attempt_id for a in attempts]})")
        if len(self.known_attempts) > _MAX_KNOWN_ATTEMPTS:
            self.known_attempts.clear()
        self.known_attempts.add((rollout_id, attempt_id))

    async def record(self, span_args: dict[str, Any]) -> None:
        """Store the call's span (with the other calls' spans of this moment); a failure is logged, not raised."""
        span = build_span(**span_args)
        try:
            await SpanWriter.of(self.store).write([span])
        except Exception:  # noqa: BLE001 - the call itself succeeded; losing its span must not fail the agent
            logger.exception("could not record the llm.call span of rollout %s attempt %s",
                             span.rollout_id, span.attempt_id)

    def record_later(self, span_args: dict[str, Any]) -> None:
        """`record` in the background (a stream whose client left: nobody waits for the answer)."""
        task = asyncio.ensure_future(self.record(span_args))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # ------------------------------------------------------------------ routes
    async def handle(self, request: Request, path: str, rollout_id: str | None, attempt_id: str | None) -> Response:
        endpoint = _ENDPOINTS[path]
        started = time.time()
        try:
            self.check_key(request)
            body = validate_body(await request.body(), endpoint)
            client_model = self.apply_model_defaults(body)
            if rollout_id is not None and attempt_id is not None:
                await self.check_rollout(rollout_id, attempt_id)
            client = self._upstream()
        except ProxyHTTPError as exc:
            return _error_response(exc.status, exc.message)
        recording = rollout_id is not None
        wants = prepare_upstream_body(body, endpoint, self.request_logprobs, self.keep_token_ids) if recording \
            else None
        span_args = dict(rollout_id=rollout_id, attempt_id=attempt_id, endpoint=endpoint, body=body,
                         started=started)
        try:
            backend, upstream = await self.pool.send(client, "POST", f"/v1/{path}", _dumps(body),
                                                     self.upstream_headers)
        except AllBackendsFailedError as exc:
            if recording:
                await self.record(dict(span_args, backend=None, http_status=502, error=str(exc)))
            return _error_response(502, str(exc))
        span_args["backend"] = backend.url
        if body.get("stream") and upstream.status_code == 200:
            return StreamingResponse(_stream(self, backend, upstream, endpoint, wants, client_model, recording,
                                             span_args),
                                     media_type="text/event-stream", headers={"cache-control": "no-cache"})
        try:
            raw = await upstream.aread()
        except Exception as exc:  # noqa: BLE001 - connection dropped mid-body: not retried (see backends.py)
            self.pool.release(backend, ok=False)
            message = f"backend {backend.url} dropped the connection while answering ({type(exc).__name__}: {exc})"
            if recording:
                await self.record(dict(span_args, http_status=502, error=message))
            return _error_response(502, message)
        finally:
            await upstream.aclose()
        if upstream.status_code >= 400:
            self.pool.release(backend, ok=False)
            if recording:
                await self.record(dict(span_args, http_status=upstream.status_code,
                                       error=raw[:2000].decode("utf-8", errors="replace")))
            return Response(raw, status_code=upstream.status_code,
                            media_type=upstream.headers.get("content-type", "application/json"))
        return await self._answer(raw, backend, upstream.status_code, endpoint, wants, client_model, recording,
                                  span_args)

    async def _answer(self, raw: bytes, backend: Any, status: int, endpoint: str, wants: ClientWants | None,
                      client_model: str | None, recording: bool, span_args: dict[str, Any]) -> Response:
        """A replica's 2xx answer: checked, recorded, stripped of what the client did not ask for."""
        result: dict[str, Any] | None = None
        try:
            data = _loads(raw)
        except _DecodeError as exc:
            problem = f"the body is not JSON ({exc}); it starts with {raw[:200]!r}"
        else:
            problem = response_problem(data, endpoint)
        if problem is None:
            try:
                result = summarize_response(data, endpoint) if recording else None
                if wants is not None:
                    strip_response(data, wants)
            except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
                problem = f"the completion has an unexpected shape ({type(exc).__name__}: {exc})"
        if problem is not None:
            message = (f"backend {backend.url} answered HTTP {status} with a response the proxy cannot use: "
                       f"{problem}. Fix: check that {backend.url}/v1 is an OpenAI-compatible server (vLLM), not "
                       "another service or an error page in front of it, and look at its log")
            self.pool.release(backend, ok=False)
            self.pool.mark_failed(backend, f"unusable HTTP {status} answer: {problem}")
            if recording:
                await self.record(dict(span_args, http_status=502, error=message))
            return _error_response(502, message)
        self.pool.release(backend, ok=True)
        if recording:
            await self.record(dict(span_args, http_status=200, result=result))
        if wants is None and client_model is None:
            return Response(raw, media_type="application/json")
        if client_model is not None:
            data["model"] = client_model
        return Response(_dumps(data), media_type="application/json")

    async def models(self, request: Request) -> Response:
        try:
            self.check_key(request)
            client = self._upstream()
        except ProxyHTTPError as exc:
            return _error_response(exc.status, exc.message)
        if self.model_list:
            data = [{"id": name, "object": "model", "owned_by": "agentlightning"} for name in self.model_list]
            return Response(_dumps({"object": "list", "data": data}), media_type="application/json")
        try:
            backend, upstream = await self.pool.send(client, "GET", "/v1/models", None, self.upstream_headers)
        except AllBackendsFailedError as exc:
            return _error_response(502, str(exc))
        try:
            raw = await upstream.aread()
        finally:
            await upstream.aclose()
            self.pool.release(backend, ok=upstream.status_code < 400)
        return Response(raw, status_code=upstream.status_code, media_type="application/json")

    def _routes(self) -> FastAPI:
        app = FastAPI(title="agentlightning LLM proxy", docs_url=None, redoc_url=None, openapi_url=None)

        @app.get("/health")
        async def health() -> dict[str, Any]:
            return {"status": "ok", "backends": self.pool.snapshot()}

        @app.post("/v1/{path:path}")
        async def plain(request: Request, path: str) -> Response:
            if path not in _ENDPOINTS:
                return _error_response(404, f"route /v1/{path} is not served; use /v1/chat/completions or "
                                            "/v1/completions")
            return await self.handle(request, path, None, None)

        @app.post("/rollout/{rollout_id}/attempt/{attempt_id}/v1/{path:path}")
        async def attributed(request: Request, rollout_id: str, attempt_id: str, path: str) -> Response:
            if path not in _ENDPOINTS:
                return _error_response(404, f"route .../v1/{path} is not served; use chat/completions or completions")
            return await self.handle(request, path, rollout_id, attempt_id)

        app.add_api_route("/v1/models", self.models, methods=["GET"])
        app.add_api_route("/rollout/{rollout_id}/attempt/{attempt_id}/v1/models", self.models, methods=["GET"])
        return app


async def _stream(app: ProxyApp, backend: Any, upstream: Any, endpoint: str, wants: Any, client_model: str | None,
                  recording: bool, span_args: dict[str, Any]) -> AsyncIterator[bytes]:
    """Pass SSE chunks through as they come; record the whole call before the final `[DONE]` goes out."""
    acc = StreamAccumulator(endpoint)
    rewrite = wants is not None or client_model is not None
    ok, error = False, None
    try:
        async for line in upstream.aiter_lines():
            if not line.startswith("data:"):
                if line:
                    yield (line + "\n").encode()
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                ok = True
                if recording:
                    await app.record(dict(span_args, http_status=200, result=acc.summary()))
                    recording = False
                yield b"data: [DONE]\n\n"
                continue
            chunk = _loads(payload)
            acc.feed(chunk)
            if not rewrite:
                yield (line + "\n\n").encode()
                continue
            if wants is not None:
                strip_chunk(chunk, wants)
            if client_model is not None and "model" in chunk:
                chunk["model"] = client_model
            yield b"data: " + _dumps(chunk) + b"\n\n"
        if not ok:
            error = f"backend {backend.url} ended the stream without [DONE]"
    except asyncio.CancelledError:
        error = "client disconnected before the stream ended"
        raise
    except Exception as exc:  # noqa: BLE001 - upstream dropped mid-stream: the client gets a truncated stream
        error = f"stream from {backend.url} broke: {type(exc).__name__}: {exc}"
        yield b"data: " + _dumps({"error": {"message": error, "type": "upstream_error", "code": 502}}) + b"\n\n"
    finally:
        app.pool.release(backend, ok=error is None)
        with contextlib.suppress(Exception):
            await upstream.aclose()
        if recording:
            app.record_later(dict(span_args, http_status=200 if ok else 502, result=acc.summary() if ok else None,
                                  error=None if ok else (error or "stream ended early")))
