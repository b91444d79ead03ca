"""`Tracer`: OpenTelemetry spans made inside an agent run, written to the store under the running attempt.

Where this sits: runner → **agent (traced)** → spans → store → adapter. The LLM proxy records the model calls; the
tracer records what happens around them — agent steps (LangGraph nodes), client-side LLM requests, tool calls,
rewards, messages, exceptions — so the adapter can credit rewards to turns and tell agents apart.

How it works: a private OpenTelemetry `TracerProvider` whose span processor turns each finished OTel span into an
`agentlightning.types.Span`. The span's `sequence_id` is reserved from the store *at the moment the span ends*
(`store.reserve_span_sequence_id`, blocking and thread-safe), so tracer spans and proxy spans of one attempt interleave
in true order without trusting clocks. Finished spans are buffered and written in one `add_spans` on `flush()`
(the runner flushes when the attempt ends, success or failure).

Use: the runner wraps each agent run in `async with tracer.trace_attempt(store, rollout_id, attempt_id): ...`;
inside it, `agentlightning.emitter.emit_reward(...)` and friends, `tracer.span(name)` and LangChain/LangGraph code
(through `agentlightning.langchain_handler`, installed automatically) all land under that attempt.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import Status, StatusCode

from agentlightning.store.base import LightningStore
from agentlightning.types import Span

__all__ = ["AttemptContext", "Tracer", "current_attempt", "from_attributes", "to_attributes"]

logger = logging.getLogger(__name__)

_KEY_ROLLOUT = "agentlightning.rollout_id"
_KEY_ATTEMPT = "agentlightning.attempt_id"


@dataclass
class AttemptContext:
    """The attempt a piece of agent code runs for, and the spans it produced that are not yet in the store."""

    store: LightningStore
    rollout_id: str
    attempt_id: str
    tracer: Tracer
    pending: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


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
    """Turns finished OTel spans into store spans with a freshly reserved sequence id."""

    def on_end(self, span: ReadableSpan) -> None:
        attributes = dict(span.attributes or {})
        rollout_id = attributes.pop(_KEY_ROLLOUT, None)
        attempt_id = attributes.pop(_KEY_ATTEMPT, None)
        ctx = _CONTEXTS.get((rollout_id, attempt_id)) if rollout_id else None
        if ctx is None:
            logger.debug("span %s ended outside any traced attempt; dropped", span.name)
            return
        try:
            sequence_id = ctx.store.reserve_span_sequence_id(ctx.rollout_id, ctx.attempt_id)
        except Exception as exc:  # noqa: BLE001 - tracing must never break the agent
            logger.warning("could not order span %s of rollout %s: %r", span.name, ctx.rollout_id, exc)
            sequence_id = None
        context = span.get_span_context()
        parent = span.parent
        status = {StatusCode.OK: "ok", StatusCode.ERROR: "error"}.get(span.status.status_code, "unset")
        converted = Span(
            rollout_id=ctx.rollout_id, attempt_id=ctx.attempt_id, sequence_id=sequence_id,
            span_id=f"{context.span_id:016x}", trace_id=f"{context.trace_id:032x}",
            parent_id=f"{parent.span_id:016x}" if parent is not None else None, name=span.name,
            start_time=(span.start_time or 0) / 1e9, end_time=(span.end_time or 0) / 1e9,
            attributes=from_attributes(attributes), status=status,  # type: ignore[arg-type]
        )
        with ctx.lock:
            ctx.pending.append(converted)


# Live attempt contexts by (rollout_id, attempt_id): the processor runs on whatever thread ends the span.
_CONTEXTS: dict[tuple[str | None, str | None], AttemptContext] = {}


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

        ctx = AttemptContext(store=store, rollout_id=rollout_id, attempt_id=attempt_id, tracer=self)
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
        """Write the attempt's finished spans to the store; returns how many were written."""
        ctx = ctx or current_attempt()
        if ctx is None:
            return 0
        with ctx.lock:
            pending, ctx.pending = ctx.pending, []
        if pending:
            await ctx.store.add_spans(sorted(pending, key=lambda s: s.sequence_id or 0))
        return len(pending)

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
