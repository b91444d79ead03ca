"""`Tracer`: OpenTelemetry spans made inside an agent run, written to the store under the running attempt.

Where this sits: runner → **agent (traced)** → spans → store → adapter. The LLM proxy records the model calls; the
tracer records what happens around them — agent steps (LangGraph nodes), client-side LLM requests, tool calls,
rewards, messages, exceptions — so the adapter can credit rewards to turns and tell agents apart.

How it works: a private OpenTelemetry `TracerProvider` whose span processor turns each finished OTel span into an
`agentlightning.types.Span` and hands it, without waiting, to the attempt's writer: the runner's event loop sends
what has ended as one `add_spans` batch (`store/span_writer.py`, group commit across the runner's episodes), and the
store numbers the spans (`sequence_id`) in the order they ended. Nothing on the agent's path waits for the network:
a span ending costs a list append, on any thread.

Order with the proxy's `llm.call` spans (same attempt, numbered by the same store counter), without clocks:
- a span always follows every model call whose answer the agent had when the span ended: the proxy stores a call's
  span before it answers, and the tracer sends a span only after it ended;
- a span precedes every model call the agent makes after it ended: before such a call leaves the runner, the
  attempt's ended spans are written (`settle_spans_before`, awaited by the shared HTTP clients of
  `agentlightning.clients`, which the examples use, so only that episode waits, and only while its spans are still
  on the wire). An agent on another HTTP client gets this order as long as the span batch (sent the moment the span
  ends, one store round trip) reaches the store before the next call's span (which needs a whole generation).
Spans still unsent when the attempt ends are written then (`flush`, also on error). A batch the store refused or
could not take is tried again at the end, so nothing is lost, and the attempt then fails with that error (the runner
records it as an infrastructure failure): its spans may be out of order.

Use: the runner wraps each agent run in `async with tracer.trace_attempt(store, rollout_id, attempt_id): ...`;
inside it, `agentlightning.emitter.emit_reward(...)` and friends, `tracer.span(name)` and LangChain/LangGraph code
(through `agentlightning.langchain_handler`, installed automatically) all land under that attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import re
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import Status, StatusCode

from agentlightning.store.base import LightningStore
from agentlightning.store.span_writer import SpanWriter
from agentlightning.types import Span

__all__ = ["AttemptContext", "Tracer", "current_attempt", "from_attributes", "settle_spans_before",
           "settle_spans_before_blocking", "to_attributes"]

logger = logging.getLogger(__name__)

_KEY_ROLLOUT = "agentlightning.rollout_id"
_KEY_ATTEMPT = "agentlightning.attempt_id"


@dataclass
class AttemptContext:
    """The attempt a piece of agent code runs for, and its spans on their way to the store.

    Ended spans wait in `unsent` (any thread appends) until the attempt's event loop hands them to the store's
    `SpanWriter`; `inflight` are the batches handed over and not yet stored; `failed` the spans of batches the store
    did not take (sent again by `Tracer.flush`), `error` the first such failure."""

    store: LightningStore
    rollout_id: str
    attempt_id: str
    tracer: Tracer
    loop: asyncio.AbstractEventLoop
    unsent: list[Span] = field(default_factory=list)
    inflight: dict[asyncio.Future[list[Span]], list[Span]] = field(default_factory=dict)
    failed: list[Span] = field(default_factory=list)
    error: BaseException | None = None
    written: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, span: Span) -> None:
        """A span ended (on any thread): queue it and have the loop send it. Never blocks, never raises."""
        with self.lock:
            self.unsent.append(span)
        try:
            if _running_loop() is self.loop:
                self.send()
            else:
                self.loop.call_soon_threadsafe(self.send)
        except RuntimeError:  # the loop is closed: the spans stay in `unsent` for the final flush
            pass

    def send(self) -> None:
        """Hand every unsent span to the writer, as one submission (call on the attempt's loop)."""
        with self.lock:
            batch, self.unsent = self.unsent, []
        if not batch:
            return
        future = SpanWriter.of(self.store).submit(batch)
        self.inflight[future] = batch
        future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[list[Span]]) -> None:
        batch = self.inflight.pop(future, [])
        exc = future.exception() if not future.cancelled() else asyncio.CancelledError()
        if exc is None:
            self.written += len(batch)
            return
        self.failed.extend(batch)
        if self.error is None:
            self.error = exc
            logger.warning("could not store %d span(s) of rollout %s attempt %s (%r); they are sent again when the "
                           "attempt ends", len(batch), self.rollout_id, self.attempt_id, exc)

    async def settled(self) -> None:
        """Wait until every span that has ended so far is stored (or its batch failed)."""
        self.send()
        while self.inflight:
            await asyncio.wait(list(self.inflight))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


_CURRENT: contextvars.ContextVar[AttemptContext | None] = contextvars.ContextVar("agl_attempt", default=None)


def current_attempt() -> AttemptContext | None:
    """The attempt being traced in this context (None outside `Tracer.trace_attempt`)."""
    return _CURRENT.get()


_JSON_SUFFIX = ".__json__"


def to_attributes(values: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry attributes take str/bool/int/float or homogeneous lists of them; anything else travels as JSON
    under `<key>.__json__` and is decoded back when the span reaches the store (`from_attributes`)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, str | bool | int | float):
            out[key] = value
        elif isinstance(value, list | tuple) and len({type(v) for v in value}) <= 1 and all(
                isinstance(v, str | bool | int | float) for v in value):
            out[key] = list(value)
        else:
            out[key + _JSON_SUFFIX] = json.dumps(value, default=str, ensure_ascii=False)
    return out


def from_attributes(values: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `to_attributes` (OTel hands lists back as tuples)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key.endswith(_JSON_SUFFIX):
            out[key[: -len(_JSON_SUFFIX)]] = json.loads(value)
        else:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


class _StoreProcessor(SpanProcessor):
    """Turns finished OTel spans into store spans and queues them on their attempt (the store numbers them)."""

    def on_end(self, span: ReadableSpan) -> None:
        attributes = dict(span.attributes or {})
        rollout_id = attributes.pop(_KEY_ROLLOUT, None)
        attempt_id = attributes.pop(_KEY_ATTEMPT, None)
        ctx = _CONTEXTS.get((rollout_id, attempt_id)) if rollout_id else None
        if ctx is None:
            logger.debug("span %s ended outside any traced attempt; dropped", span.name)
            return
        context = span.get_span_context()
        parent = span.parent
        status = {StatusCode.OK: "ok", StatusCode.ERROR: "error"}.get(span.status.status_code, "unset")
        converted = Span(
            rollout_id=ctx.rollout_id, attempt_id=ctx.attempt_id,
            span_id=f"{context.span_id:016x}", trace_id=f"{context.trace_id:032x}",
            parent_id=f"{parent.span_id:016x}" if parent is not None else None, name=span.name,
            start_time=(span.start_time or 0) / 1e9, end_time=(span.end_time or 0) / 1e9,
            attributes=from_attributes(attributes), status=status,  # type: ignore[arg-type]
        )
        ctx.add(converted)


# Live attempt contexts by (rollout_id, attempt_id): the processor runs on whatever thread ends the span.
_CONTEXTS: dict[tuple[str | None, str | None], AttemptContext] = {}
_ATTRIBUTED = re.compile(r"/rollout/([^/]+)/attempt/([^/]+)/v1/")


def _context_of(url_path: str) -> AttemptContext | None:
    match = _ATTRIBUTED.search(url_path)
    return _CONTEXTS.get((match.group(1), match.group(2))) if match else None


async def settle_spans_before(url_path: str) -> None:
    """Before a model call to `url_path` leaves (an attempt-bound proxy URL), wait until the spans of that attempt
    that have ended are stored, so they are numbered before the call's `llm.call` span. Costs nothing when they
    are (or when the URL is no attempt's); a store failure is left to the attempt's flush."""
    ctx = _context_of(url_path)
    if ctx is None or (not ctx.unsent and not ctx.inflight):
        return
    if _running_loop() is ctx.loop:
        await ctx.settled()
    else:  # an agent on another loop (a thread of its own): wait on the attempt's loop
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(ctx.settled(), ctx.loop))


def settle_spans_before_blocking(url_path: str, timeout: float = 60.0) -> None:
    """`settle_spans_before` for sync HTTP clients (a sync agent runs on a worker thread, not on the attempt's loop).
    On the attempt's own loop thread it cannot wait (that would stall the loop it waits for) and returns at once."""
    ctx = _context_of(url_path)
    if ctx is None or (not ctx.unsent and not ctx.inflight) or _running_loop() is not None:
        return
    with contextlib.suppress(Exception):  # a timeout or a closed loop: ordering is then best effort
        asyncio.run_coroutine_threadsafe(ctx.settled(), ctx.loop).result(timeout)


class Tracer:
    """Creates spans for the current attempt. One per process is enough; it is cheap to hold.

    span_processors: extra OpenTelemetry span processors that see every span too (e.g. a `BatchSpanProcessor` with
    an OTLP exporter, to watch agents in your own tracing backend); the store always gets them. A tracer handed to
    runner processes travels pickled (class and processors) and is rebuilt there, so the processors must pickle.
    """

    def __init__(self, span_processors: Sequence[SpanProcessor] = ()) -> None:
        self.span_processors = list(span_processors)
        self._provider = TracerProvider()
        self._provider.add_span_processor(_StoreProcessor())
        for processor in self.span_processors:
            self._provider.add_span_processor(processor)
        self._otel = self._provider.get_tracer("agentlightning")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return type(self), (self.span_processors,)

    # ------------------------------------------------------------------ attempt scope
    @contextlib.asynccontextmanager
    async def trace_attempt(self, store: LightningStore, rollout_id: str, attempt_id: str) -> AsyncIterator[
            AttemptContext]:
        """Everything traced inside belongs to this attempt; pending spans are flushed on exit (also on error)."""
        from agentlightning import langchain_handler  # local: LangChain is optional for non-LangChain agents

        ctx = AttemptContext(store=store, rollout_id=rollout_id, attempt_id=attempt_id, tracer=self,
                             loop=asyncio.get_running_loop())
        _CONTEXTS[(rollout_id, attempt_id)] = ctx
        token = _CURRENT.set(ctx)
        handler_token = langchain_handler.activate(self)
        try:
            yield ctx
        finally:
            langchain_handler.deactivate(handler_token)
            _CURRENT.reset(token)
            try:
                await self.flush(ctx)
            finally:
                _CONTEXTS.pop((rollout_id, attempt_id), None)

    async def flush(self, ctx: AttemptContext | None = None) -> int:
        """Store every span of the attempt that has ended; returns how many are stored in all. Raises the store's
        error when a batch could not be stored earlier (after storing it now, if the store takes it: nothing is
        lost, but its order may be off) or cannot be stored now."""
        ctx = ctx or current_attempt()
        if ctx is None:
            return 0
        await ctx.settled()
        if ctx.failed:
            retry, ctx.failed = ctx.failed, []
            await SpanWriter.of(ctx.store).write(retry)
            ctx.written += len(retry)
        if ctx.error is not None:
            error, ctx.error = ctx.error, None
            raise error
        return ctx.written

    # ------------------------------------------------------------------ spans
    def _attributes(self, ctx: AttemptContext, attributes: dict[str, Any] | None) -> dict[str, Any]:
        values = to_attributes(attributes or {})
        values[_KEY_ROLLOUT] = ctx.rollout_id
        values[_KEY_ATTEMPT] = ctx.attempt_id
        return values

    def start_span(self, name: str, attributes: dict[str, Any] | None = None,
                   parent: otel_trace.Span | None = None) -> otel_trace.Span:
        """Start a span by hand (end it with `.end()`); for callback-style code such as LangChain handlers."""
        ctx = current_attempt()
        if ctx is None:
            raise RuntimeError(f"span {name!r} started outside a rollout: tracing needs an attempt. Fix: run the "
                               "agent through a Runner/Trainer, or inside `Tracer.trace_attempt(...)`")
        context = otel_trace.set_span_in_context(parent) if parent is not None else None
        return self._otel.start_span(name, context=context, attributes=self._attributes(ctx, attributes))

    @contextlib.contextmanager
    def span(self, name: str, attributes: dict[str, Any] | None = None) -> Iterator[otel_trace.Span]:
        """`with tracer.span("tool.calculate", {"expression": e}) as s: ...` — an exception marks it as an error."""
        ctx = current_attempt()
        if ctx is None:
            raise RuntimeError(f"span {name!r} opened outside a rollout. Fix: run the agent through a Runner/"
                               "Trainer, or inside `Tracer.trace_attempt(...)`")
        with self._otel.start_as_current_span(name, attributes=self._attributes(ctx, attributes),
                                              record_exception=True, set_status_on_exception=True) as otel_span:
            yield otel_span
            if otel_span.status.status_code == StatusCode.UNSET:
                otel_span.set_status(Status(StatusCode.OK))

    def instant(self, name: str, attributes: dict[str, Any] | None = None, error: bool = False) -> None:
        """A zero-length span (rewards, messages, objects, exceptions)."""
        otel_span = self.start_span(name, attributes)
        otel_span.set_status(Status(StatusCode.ERROR if error else StatusCode.OK))
        otel_span.end()
