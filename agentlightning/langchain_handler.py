"""LangChain / LangGraph tracing without touching the agent: graph nodes, model requests and tools become spans.

Where this sits: runner → agent (LangGraph) → **callbacks** → tracer → spans → adapter. While the tracer traces an
attempt, a `LightningCallbackHandler` is registered through LangChain's configure hook (a context variable), so every
LangChain runnable started in that context reports to it — the user passes no `callbacks=`.

What it records (names from `agentlightning.semconv`):
- `AGENT` span per LangGraph node run (`agent_name` = node name), from node start to end (errors marked);
- `LLM_REQUEST` instant span per chat-model call: the node it ran in (`agent_name`) and the `messages_digest` of the
  messages sent. The proxy sees the same messages over HTTP, so the adapter pairs each proxy `llm.call` span with the
  node that made it (`agent_match` needs this);
- `tool.<name>` span per tool run.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tracers.context import register_configure_hook
from opentelemetry.trace import Status, StatusCode

from agentlightning import semconv

if TYPE_CHECKING:
    from opentelemetry.trace import Span as OtelSpan

    from agentlightning.tracer import Tracer

__all__ = ["LightningCallbackHandler", "activate", "deactivate"]

_ACTIVE: contextvars.ContextVar[LightningCallbackHandler | None] = contextvars.ContextVar("agl_lc_handler",
                                                                                          default=None)
register_configure_hook(_ACTIVE, inheritable=True)


def activate(tracer: Tracer) -> contextvars.Token[LightningCallbackHandler | None]:
    """Make LangChain report to `tracer` in the current context (the tracer calls this per attempt)."""
    return _ACTIVE.set(LightningCallbackHandler(tracer))


def deactivate(token: contextvars.Token[LightningCallbackHandler | None]) -> None:
    _ACTIVE.reset(token)


class LightningCallbackHandler(BaseCallbackHandler):
    """Turns LangChain callbacks into tracer spans (see the module docstring)."""

    run_inline = True  # run in the caller's thread and context, where the attempt is known

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self._open: dict[UUID, OtelSpan] = {}
        self._node_of_run: dict[UUID, str] = {}

    def _node(self, metadata: dict[str, Any] | None, parent_run_id: UUID | None) -> str | None:
        node = (metadata or {}).get("langgraph_node")
        if node is None and parent_run_id is not None:
            node = self._node_of_run.get(parent_run_id)
        return node

    def _close(self, run_id: UUID, error: BaseException | None = None) -> None:
        self._node_of_run.pop(run_id, None)
        span = self._open.pop(run_id, None)
        if span is None:
            return
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)))
        else:
            span.set_status(Status(StatusCode.OK))
        span.end()

    # ------------------------------------------------------------------ graph nodes
    def on_chain_start(self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID,
                       parent_run_id: UUID | None = None, metadata: dict[str, Any] | None = None,
                       **kwargs: Any) -> None:
        node = self._node(metadata, parent_run_id)
        if node is not None:
            self._node_of_run[run_id] = node
        if node is not None and kwargs.get("name") == node and (metadata or {}).get("langgraph_node") == node:
            attributes = {semconv.AGENT_NAME: node, "langgraph_step": (metadata or {}).get("langgraph_step")}
            self._open[run_id] = self.tracer.start_span(semconv.AGENT, attributes)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id, error)

    # ------------------------------------------------------------------ model calls
    def on_chat_model_start(self, serialized: dict[str, Any] | None, messages: list[list[Any]], *, run_id: UUID,
                            parent_run_id: UUID | None = None, metadata: dict[str, Any] | None = None,
                            **kwargs: Any) -> None:
        node = self._node(metadata, parent_run_id) or kwargs.get("name")
        for batch in messages:
            self.tracer.instant(semconv.LLM_REQUEST, {semconv.AGENT_NAME: node,
                                                      semconv.MESSAGES_DIGEST: semconv.messages_digest(batch),
                                                      "run_id": str(run_id)})

    # ------------------------------------------------------------------ tools
    def on_tool_start(self, serialized: dict[str, Any] | None, input_str: str, *, run_id: UUID,
                      parent_run_id: UUID | None = None, metadata: dict[str, Any] | None = None,
                      **kwargs: Any) -> None:
        name = (serialized or {}).get("name") or kwargs.get("name") or "tool"
        attributes = {"tool_name": name, "input": input_str,
                      semconv.AGENT_NAME: self._node(metadata, parent_run_id)}
        self._open[run_id] = self.tracer.start_span(f"tool.{name}", attributes)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._open.get(run_id)
        if span is not None:
            span.set_attribute("output", str(output)[:4000])
        self._close(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id, error)
