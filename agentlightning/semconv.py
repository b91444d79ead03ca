"""Span names and attribute keys: the contract between the writers of spans and the adapter that reads them.

Where this sits: proxy / tracer / emitters → **spans in the store** → adapter → triplets. Writers:
- the LLM proxy writes one `LLM_CALL` span per model call (`agentlightning/proxy/recording.py` documents its
  attributes: `prompt_token_ids`, `response_token_ids`, `logprobs`, `request`, `response`, ...);
- the tracer / emitters (in the runner, around the agent) write `REWARD`, `MESSAGE`, `OBJECT`, `EXCEPTION`, `METRICS`, `AGENT`
  (one per agent step / LangGraph node, attribute `AGENT_NAME`) and `LLM_REQUEST` spans. An `LLM_REQUEST` span is the
  client-side view of a model call made inside an agent step: it carries the step's `AGENT_NAME` and the
  `MESSAGES_DIGEST` of the messages sent, so the adapter can tell which agent made each proxy `LLM_CALL` (the proxy
  itself only sees HTTP) — `messages_digest()` computes the same digest on both sides.

Ordering is by the store's per-attempt `sequence_id`, never by clocks: a reward belongs to the latest `LLM_CALL` with a
smaller sequence id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

__all__ = [
    "AGENT",
    "AGENT_NAME",
    "EXCEPTION",
    "LLM_CALL",
    "LLM_REQUEST",
    "MESSAGE",
    "MESSAGES_DIGEST",
    "METRICS",
    "OBJECT",
    "REWARD",
    "messages_digest",
]

LLM_CALL = "llm.call"
REWARD = "agentlightning.reward"
MESSAGE = "agentlightning.message"
OBJECT = "agentlightning.object"
EXCEPTION = "agentlightning.exception"
METRICS = "agentlightning.metrics"
AGENT = "agentlightning.agent"
LLM_REQUEST = "agentlightning.llm_request"

AGENT_NAME = "agent_name"
MESSAGES_DIGEST = "messages_digest"

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool",
          "AIMessageChunk": "assistant"}


def _role_and_text(message: Any) -> tuple[str, str]:
    if isinstance(message, dict):
        role, content = str(message.get("role", "")), message.get("content")
    else:  # a LangChain BaseMessage (duck-typed: .type and .content)
        role, content = _ROLES.get(getattr(message, "type", ""), str(getattr(message, "type", ""))), message.content
    if isinstance(content, list):  # OpenAI content parts: keep the text parts in order
        content = "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return _ROLES.get(role, role), content or ""


def messages_digest(messages: Iterable[Any]) -> str:
    """A short digest of the (role, text) sequence of chat messages, equal for OpenAI dicts and LangChain messages."""
    payload = json.dumps([_role_and_text(m) for m in messages], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
