"""Emitters: what agent code calls to report rewards and annotations for the attempt it runs in.

Where this sits: agent → **emit_*()** → tracer → spans in the store → adapter (rewards become triplet rewards).
Each call becomes one zero-length span named after `agentlightning.semconv` (`REWARD`, `MESSAGE`, `OBJECT`,
`EXCEPTION`), ordered among the proxy's LLM-call spans by the store's sequence ids: a reward belongs to the latest
model call that finished before it, so an agent can emit intermediate rewards per turn.

    from agentlightning.emitter import emit_reward
    emit_reward(1.0)                                          # one scalar reward
    emit_reward({"exec": 1.0, "format": 0.5}, primary_key="exec")   # named rewards; the primary one trains

Calling an emitter outside a traced attempt raises `RuntimeError` explaining how to run the agent.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Mapping
from typing import Any

from agentlightning import semconv
from agentlightning.tracer import current_attempt

__all__ = ["emit_exception", "emit_message", "emit_metrics", "emit_object", "emit_reward"]


def _tracer(what: str):  # type: ignore[no-untyped-def]
    ctx = current_attempt()
    if ctx is None:
        raise RuntimeError(f"{what} was called outside a rollout, so there is no attempt to record it on. Fix: run "
                           "the agent through `Trainer.dev/fit` or a Runner (or inside `Tracer.trace_attempt`).")
    return ctx.tracer


def _check_number(name: str, value: Any, what: str = "reward") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        raise ValueError(f"{what} {name}={value!r} must be a finite number (int or float)")
    return float(value)


def emit_reward(value: float | dict[str, float], primary_key: str | None = None) -> float:
    """Record a reward for the current attempt; returns the primary (trained) value."""
    tracer = _tracer("emit_reward()")
    if isinstance(value, dict):
        if not value:
            raise ValueError("emit_reward({}) has no rewards; pass a float or a non-empty dict")
        rewards = {str(k): _check_number(str(k), v) for k, v in value.items()}
        key = primary_key if primary_key is not None else (next(iter(rewards)) if len(rewards) == 1 else None)
        if key is None or key not in rewards:
            raise ValueError(f"emit_reward(dict) needs primary_key naming the reward to train on; got "
                             f"primary_key={primary_key!r}, rewards {sorted(rewards)}")
        tracer.instant(semconv.REWARD, {"rewards": rewards, "primary_key": key, "reward": rewards[key]})
        return rewards[key]
    if primary_key is not None:
        raise ValueError("primary_key is only used with a dict of rewards")
    reward = _check_number("value", value)
    tracer.instant(semconv.REWARD, {"reward": reward})
    return reward


def emit_message(message: str, **attributes: Any) -> None:
    """Record a free-form note (shows up in the trace; not used for training)."""
    _tracer("emit_message()").instant(semconv.MESSAGE, {"message": str(message), **attributes})


def emit_metrics(values: Mapping[str, float | int | bool]) -> dict[str, float]:
    """Record numbers that describe this attempt (tool calls, query errors, answer found, ...); not rewards. The
    trainer reports each key as `agent/<key>`: per attempt the values of a key are summed over calls, then averaged
    over the step's (or validation's) rollouts that reported it. Booleans count as 0/1. Returns what was recorded.

        emit_metrics({"tool_calls": 2, "format_ok": True})
    """
    tracer = _tracer("emit_metrics()")
    if not isinstance(values, Mapping) or not values:
        raise ValueError(f"emit_metrics({values!r}) needs a non-empty mapping of name -> number, e.g. "
                         "emit_metrics({'tool_calls': 2})")
    checked: dict[str, float] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key or "/" in key:
            raise ValueError(f"metric name {key!r} must be a non-empty string without '/' (it becomes "
                             "agent/<name> in the trainer's metrics)")
        checked[key] = float(value) if isinstance(value, bool) else _check_number(key, value, what="metric")
    tracer.instant(semconv.METRICS, {"values": checked})
    return checked


def emit_object(obj: Any, name: str = "object") -> None:
    """Record any JSON-serializable object (e.g. the agent's final answer) in the trace."""
    _tracer("emit_object()").instant(semconv.OBJECT, {"name": name, "json": obj})


def emit_exception(exc: BaseException) -> None:
    """Record an exception with its traceback (the runner does this for exceptions that escape the agent)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    _tracer("emit_exception()").instant(semconv.EXCEPTION, {"type": type(exc).__name__, "message": str(exc),
                                                            "traceback": text}, error=True)
