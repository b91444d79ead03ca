"""What the LLM proxy asks vLLM for, what it hands back to the client, and the span it records per call.

Where this sits: task → store → runner → agent → proxy → vLLM → **spans** → adapter → verl. The adapter builds training
samples from these spans, so their attribute names are a contract (`SPAN_NAME`, and the keys below).

Upstream request: the client's body plus `return_token_ids: true` (and `logprobs` when the proxy has
`request_logprobs=True`: `true` for chat, `1` for completions). Response to the client: the same fields removed again
unless the client asked for them itself (or the proxy has `keep_token_ids=True`).

One span per call, `name="llm.call"`, attributes:
- `endpoint`: "chat.completions" | "completions"; `stream`: bool; `model`: model name sent upstream;
  `backend`: replica URL that answered; `latency_s`: seconds from request to last byte; `http_status`.
- `request`: {"messages" | "prompt", "tools" (if any), "sampling_params": every other request field}.
- `response`: {"text", "tool_calls" (chat, list of OpenAI tool-call dicts), "finish_reason", "id"}.
- `prompt_token_ids`, `response_token_ids` (choice 0; vLLM includes the final EOS id), `logprobs` (choice 0, list of
  floats, only when vLLM returned them), `usage` (OpenAI usage dict), `num_choices`.
- failed calls (after retries, an upstream 4xx, an upstream answer the proxy cannot use, or a stream cut short) are
  recorded with `status="error"` and an `error` attribute, and carry no token IDs; successful calls have
  `status="ok"`. Adapters train on `ok` spans only.

An answer is usable when it is a JSON object with a non-empty `choices` list of objects (`message` an object for
chat, `text` a string or null for completions); `response_problem` says what else it is. The proxy answers anything
else with 502 and records it as an error span, so no call is ever missing from the trace.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from agentlightning.types import Span

__all__ = [
    "SPAN_NAME",
    "ClientWants",
    "StreamAccumulator",
    "build_span",
    "prepare_upstream_body",
    "response_problem",
    "strip_chunk",
    "strip_response",
    "summarize_response",
]

SPAN_NAME = "llm.call"
_NOT_SAMPLING = frozenset({"messages", "prompt", "tools", "model", "stream", "return_token_ids"})


@dataclass(frozen=True)
class ClientWants:
    """Which of the fields the proxy forces upstream the client asked for itself (those are not stripped)."""

    token_ids: bool = False
    logprobs: bool = False


def prepare_upstream_body(body: dict[str, Any], endpoint: str, request_logprobs: bool = False,
                          keep_token_ids: bool = False) -> ClientWants:
    """Force token IDs (and logprobs when configured) on `body` in place; returns what the client itself wanted."""
    wants = ClientWants(token_ids=keep_token_ids or bool(body.get("return_token_ids")),
                        logprobs=keep_token_ids or bool(body.get("logprobs")))
    body["return_token_ids"] = True
    if request_logprobs and not body.get("logprobs"):
        body["logprobs"] = True if endpoint == "chat.completions" else 1
    return wants


def _strip_choice(choice: dict[str, Any], wants: ClientWants) -> None:
    if not wants.token_ids:
        choice.pop("token_ids", None)
        choice.pop("prompt_token_ids", None)
    if not wants.logprobs and "logprobs" in choice:
        choice["logprobs"] = None


def strip_response(data: dict[str, Any], wants: ClientWants) -> dict[str, Any]:
    """Remove (in place) token IDs / logprobs the client did not ask for; returns `data`."""
    if not wants.token_ids:
        data.pop("prompt_token_ids", None)
        data.pop("response_token_ids", None)  # vLLM < 0.10.2 with instrument_vllm()
    for choice in data.get("choices") or ():
        _strip_choice(choice, wants)
    return data


strip_chunk = strip_response


def _request_summary(body: dict[str, Any], endpoint: str) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    if endpoint == "chat.completions":
        summary["messages"] = body.get("messages")
    else:
        summary["prompt"] = body.get("prompt")
    if body.get("tools"):
        summary["tools"] = body["tools"]
    summary["sampling_params"] = {k: v for k, v in body.items() if k not in _NOT_SAMPLING}
    return summary


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def response_problem(data: Any, endpoint: str) -> str | None:
    """None when `data` (a decoded non-streamed upstream answer) is a usable completion, else what is wrong with it."""
    if not isinstance(data, dict):
        return f"the body is not a JSON object but a JSON {type(data).__name__} ({_short(data)})"
    if "error" in data and not data.get("choices"):
        error = data["error"]
        detail = error.get("message") if isinstance(error, dict) and error.get("message") else error
        return f"the body is an error object, not a completion: {_short(detail, 500)}"
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        return f"'choices' must be a non-empty list of objects, got {_short(choices)}"
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            return f"choices[{i}] must be an object, got {_short(choice)}"
        if endpoint == "chat.completions":
            if not isinstance(choice.get("message"), dict):
                return f"choices[{i}].message must be an object, got {_short(choice.get('message'))}"
        elif not isinstance(choice.get("text"), str | None):
            return f"choices[{i}].text must be a string, got {_short(choice.get('text'))}"
    return None


def _logprob_list(logprobs: Any) -> list[float] | None:
    if not isinstance(logprobs, dict):
        return None
    if isinstance(logprobs.get("content"), list):  # chat
        return [entry.get("logprob") for entry in logprobs["content"]]
    if isinstance(logprobs.get("token_logprobs"), list):  # completions
        return list(logprobs["token_logprobs"])
    return None


def summarize_response(data: dict[str, Any], endpoint: str) -> dict[str, Any]:
    """The span attributes taken from a whole (non-streamed) response."""
    choices = data.get("choices") or [{}]
    first = choices[0]
    if endpoint == "chat.completions":
        message = first.get("message") or {}
        response = {"text": message.get("content"), "tool_calls": message.get("tool_calls") or None}
    else:
        response = {"text": first.get("text")}
    response.update(finish_reason=first.get("finish_reason"), id=data.get("id"))
    prompt_ids = data.get("prompt_token_ids", first.get("prompt_token_ids"))
    response_ids = first.get("token_ids")
    if response_ids is None and data.get("response_token_ids"):  # vLLM < 0.10.2 with instrument_vllm()
        response_ids = data["response_token_ids"][0]
    out: dict[str, Any] = {"response": response, "prompt_token_ids": prompt_ids, "response_token_ids": response_ids,
                           "usage": data.get("usage"), "num_choices": len(choices)}
    logprobs = _logprob_list(first.get("logprobs"))
    if logprobs is not None:
        out["logprobs"] = logprobs
    return out


@dataclass
class StreamAccumulator:
    """Rebuilds the whole answer (choice 0) from streamed chunks, for the span."""

    endpoint: str
    text: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    prompt_token_ids: list[int] | None = None
    logprobs: list[float] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    response_id: str | None = None
    saw_token_ids: bool = False
    num_choices: int = 0

    def feed(self, chunk: dict[str, Any]) -> None:
        self.response_id = self.response_id or chunk.get("id")
        if chunk.get("prompt_token_ids") is not None:
            self.prompt_token_ids = list(chunk["prompt_token_ids"])
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            self.num_choices = max(self.num_choices, index + 1)
            if index != 0:
                continue
            if choice.get("prompt_token_ids") is not None and self.prompt_token_ids is None:
                self.prompt_token_ids = list(choice["prompt_token_ids"])
            if choice.get("token_ids") is not None:
                self.saw_token_ids = True
                self.token_ids.extend(choice["token_ids"])
            logprobs = _logprob_list(choice.get("logprobs"))
            if logprobs:
                self.logprobs.extend(logprobs)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            if self.endpoint == "chat.completions":
                self._feed_delta(choice.get("delta") or {})
            elif choice.get("text"):
                self.text.append(choice["text"])

    def _feed_delta(self, delta: dict[str, Any]) -> None:
        if delta.get("content"):
            self.text.append(delta["content"])
        for call in delta.get("tool_calls") or ():
            slot = self.tool_calls.setdefault(call.get("index", 0), {"id": None, "type": "function",
                                                                      "function": {"name": "", "arguments": ""}})
            if call.get("id"):
                slot["id"] = call["id"]
            function = call.get("function") or {}
            if function.get("name"):
                slot["function"]["name"] += function["name"]
            if function.get("arguments"):
                slot["function"]["arguments"] += function["arguments"]

    def summary(self) -> dict[str, Any]:
        response: dict[str, Any] = {"text": "".join(self.text)}
        if self.endpoint == "chat.completions":
            response["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)] or None
        response.update(finish_reason=self.finish_reason, id=self.response_id)
        out: dict[str, Any] = {"response": response, "prompt_token_ids": self.prompt_token_ids,
                               "response_token_ids": self.token_ids if self.saw_token_ids else None,
                               "usage": self.usage, "num_choices": self.num_choices}
        if self.logprobs:
            out["logprobs"] = self.logprobs
        return out


def build_span(rollout_id: str, attempt_id: str, endpoint: str, body: dict[str, Any], started: float,
               backend: str | None, http_status: int, result: dict[str, Any] | None = None,
               error: str | None = None) -> Span:
    """The `llm.call` span of one call (`result` from `summarize_response` / `StreamAccumulator.summary`)."""
    ended = time.time()
    attributes: dict[str, Any] = {
        "endpoint": endpoint, "stream": bool(body.get("stream")), "model": body.get("model"), "backend": backend,
        "latency_s": ended - started, "http_status": http_status, "request": _request_summary(body, endpoint),
    }
    if error is None and result is not None:
        attributes.update(result)
    else:
        attributes["error"] = error
    return Span(rollout_id=rollout_id, attempt_id=attempt_id, span_id=uuid.uuid4().hex, name=SPAN_NAME,
                start_time=started, end_time=ended, attributes=attributes, status="ok" if error is None else "error")
