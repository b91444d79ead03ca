"""The trace adapter: turns the spans of one attempt into training `Triplet`s (token IDs, mask, logprobs, reward).

Where this sits: task → store → runner → agent → proxy → vLLM → spans → **adapter** → verl batch.

The algorithm, for the spans of one attempt:

1. Order by the store's per-attempt `sequence_id` (never by clock) and drop duplicates: the same `span_id` with the
   same `sequence_id`, or any repeated `span_id` of an `llm.call` span (a re-sent proxy span). Spans without a
   sequence id go last, in input order.
2. Calls are the proxy's `semconv.LLM_CALL` spans. A call is *trainable* when `status == "ok"` and it has non-empty
   `prompt_token_ids` and `response_token_ids`; failed calls (any other status) and calls without IDs are counted
   in `stats` and never trained.
3. Agent of a call: its own `AGENT_NAME` attribute, else the earliest unused `LLM_REQUEST` span (written by the
   tracer inside an agent step) whose `MESSAGES_DIGEST` equals `messages_digest(request.messages)`. Each request span
   is used once; trainable calls are matched first (in order), so a client-side retry after a failed call still
   gets the agent. With `agent_match` (a regex, `re.search`) only calls whose agent matches are kept; calls of
   unknown agent are then dropped too.
4. Rewards (`semconv.REWARD` spans: `rewards[primary_key]` when a `rewards` dict is present, else `reward`) belong to
   the latest kept call with a smaller sequence id. Several rewards on one call are **summed**. A reward before any
   kept call is counted (`rewards_before_any_call`) and listed in `problems`; it still counts for `final_reward`
   (the value of the attempt's last reward span). Calls without a reward get `reward=None`.
5. `transition` mode: one triplet per kept call; `response_mask` is all 1; logprobs are kept when present and as
   long as the response (else None, and a problem entry when present but malformed).
   `trajectory` mode: consecutive kept calls of the same agent are merged while call k's `prompt + response` IDs are
   a prefix of call k+1's prompt. The merged response is r0 + (tokens the template/tool inserted between turns) +
   r1 + ...; the mask is 1 on model-generated tokens and 0 on inserted ones; logprobs are 0.0 on inserted tokens
   (None if any merged call lacks logprobs); the reward is the sum of the merged calls' rewards (None if none).
   When the prefix check fails (re-tokenization of the previous answer, a template that rewrites history, or simply
   a new conversation) the call starts a new triplet, `merge_failures` is counted and the rollout id and the index
   of the first mismatching token are logged. Masks are never guessed.

Every triplet's metadata: rollout_id, attempt_id, data_id, turn_index (0-based over emitted triplets), agent_name,
sequence_ids (the call spans it covers), final_reward. An empty result carries `empty_reason` and logs a WARNING.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agentlightning import semconv
from agentlightning.store.base import LightningStore
from agentlightning.types import Span, Triplet

__all__ = ["AdapterMode", "AdapterResult", "TraceAdapter"]

logger = logging.getLogger(__name__)

AdapterMode = Literal["transition", "trajectory"]
_MODES: tuple[str, ...] = ("transition", "trajectory")
_STAT_KEYS: tuple[str, ...] = ("num_llm_calls", "num_error_calls", "num_without_token_ids",
                               "num_filtered_by_agent_match", "duplicates_dropped", "merge_failures",
                               "rewards_before_any_call")
_NO_IDS_HINT = "was return_token_ids forced? is the agent calling the proxy URL?"


@dataclass
class AdapterResult:
    """What `TraceAdapter.adapt` returns: the triplets plus everything needed to explain them (or their absence)."""

    triplets: list[Triplet] = field(default_factory=list)
    final_reward: float | None = None
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_STAT_KEYS, 0))
    problems: list[str] = field(default_factory=list)
    empty_reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # from `emit_metrics`, summed per key over the attempt


@dataclass
class _Call:
    """One `llm.call` span with what the adapter derived from it."""

    span: Span
    agent: str | None = None
    prompt: list[int] | None = None
    response: list[int] | None = None
    logprobs: list[float] | None = None
    rewards: list[float] = field(default_factory=list)

    @property
    def seq(self) -> int:
        return self.span.sequence_id if self.span.sequence_id is not None else -1

    @property
    def reward(self) -> float | None:
        return sum(self.rewards) if self.rewards else None


# ---------------------------------------------------------------------------------------------------------- helpers
def _token_ids(value: Any) -> list[int] | None:
    """A non-empty list of ints, or None."""
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        return None
    return list(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        return None
    return float(value)


def _first_mismatch(expected: Sequence[int], actual: Sequence[int]) -> int:
    """Index of the first position where `actual` does not continue `expected` (len(expected) if it does)."""
    for i, token in enumerate(expected):
        if i >= len(actual) or actual[i] != token:
            return i
    return len(expected)


def _order_and_dedupe(spans: Sequence[Span]) -> tuple[list[Span], int]:
    """Spans by sequence id (missing ids last, input order), without duplicates; returns (spans, dropped)."""
    ordered = sorted(enumerate(spans), key=lambda p: (p[1].sequence_id is None, p[1].sequence_id or 0, p[0]))
    seen: set[tuple[str, int | None]] = set()
    seen_calls: set[str] = set()
    kept: list[Span] = []
    for _, span in ordered:
        key = (span.span_id, span.sequence_id)
        if key in seen or (span.name == semconv.LLM_CALL and span.span_id in seen_calls):
            continue
        seen.add(key)
        if span.name == semconv.LLM_CALL:
            seen_calls.add(span.span_id)
        kept.append(span)
    return kept, len(spans) - len(kept)


def _reward_value(span: Span, problems: list[str]) -> float | None:
    """The trained value of a reward span (`rewards[primary_key]` if a dict is given, else `reward`)."""
    attrs = span.attributes
    rewards = attrs.get("rewards")
    if isinstance(rewards, dict):
        key = attrs.get("primary_key")
        if key not in rewards:
            problems.append(f"reward span seq={span.sequence_id} has rewards {sorted(rewards)} but primary_key "
                            f"{key!r} is not among them; value ignored")
            return None
        raw, label = rewards[key], f"rewards[{key!r}]"
    else:
        raw, label = attrs.get("reward"), "reward"
    value = _number(raw)
    if value is None:
        problems.append(f"reward span seq={span.sequence_id}: {label}={raw!r} is not a finite number; ignored")
    return value


# ---------------------------------------------------------------------------------------------------------- adapter
class TraceAdapter:
    """Spans of one attempt → `AdapterResult` (see the module docstring for the rules)."""

    def __init__(self, mode: AdapterMode = "transition", agent_match: str | None = None) -> None:
        if mode not in _MODES:
            raise ValueError(f"TraceAdapter mode={mode!r} is not supported. Fix: use one of {list(_MODES)} "
                             "('transition': one sample per call; 'trajectory': merge a conversation's turns).")
        self.mode: AdapterMode = mode
        self.agent_match = agent_match
        self._agent_re: re.Pattern[str] | None = None
        if agent_match is not None:
            try:
                self._agent_re = re.compile(agent_match)
            except re.error as exc:
                raise ValueError(f"TraceAdapter agent_match={agent_match!r} is not a valid regular expression "
                                 f"({exc}). Fix: pass a Python regex such as 'writer' or '^(check|rewrite)$'.") from None

    def __repr__(self) -> str:
        return f"TraceAdapter(mode={self.mode!r}, agent_match={self.agent_match!r})"

    async def adapt_attempt(self, store: LightningStore, rollout_id: str, attempt_id: str = "latest",
                            data_id: str | None = None) -> AdapterResult:
        """Query the spans of one attempt from `store` and adapt them."""
        spans = await store.query_spans(rollout_id, attempt_id)
        return self.adapt(spans, rollout_id=rollout_id, data_id=data_id)

    def adapt(self, spans: Sequence[Span], rollout_id: str | None = None,
              data_id: str | None = None) -> AdapterResult:
        """Turn the spans of ONE attempt into triplets. Spans of several attempts raise ValueError."""
        attempts = sorted({s.attempt_id for s in spans})
        if len(attempts) > 1:
            raise ValueError(f"adapt() got spans of {len(attempts)} attempts {attempts}; sequence ids are per "
                             "attempt. Fix: query_spans(rollout_id, attempt_id) for one attempt (or 'latest').")
        rollout_id = rollout_id if rollout_id is not None else (spans[0].rollout_id if spans else None)
        result = AdapterResult()
        ordered, result.stats["duplicates_dropped"] = _order_and_dedupe(spans)
        if any(s.sequence_id is None for s in ordered):
            result.problems.append("some spans have no sequence_id; they were ordered last, in input order")
        calls = [_Call(span=s) for s in ordered if s.name == semconv.LLM_CALL]
        result.stats["num_llm_calls"] = len(calls)
        trainable = self._trainable(calls, result)
        self._resolve_agents(calls, trainable, [s for s in ordered if s.name == semconv.LLM_REQUEST])
        kept = self._filter_agents(trainable, result)
        result.final_reward = self._attach_rewards(ordered, kept, result)
        result.triplets = self._triplets(kept, rollout_id, result)
        self._finish_metadata(result, rollout_id, attempts[0] if attempts else None, data_id)
        result.metrics = _agent_metrics(ordered)
        if not result.triplets:
            result.empty_reason = self._empty_reason(calls, trainable, len(ordered))
            logger.warning("rollout %s: adapter produced no triplets: %s", rollout_id, result.empty_reason)
        return result

    # ------------------------------------------------------------------ steps
    def _trainable(self, calls: list[_Call], result: AdapterResult) -> list[_Call]:
        """Calls with status ok and both token-ID lists (with validated logprobs); counts the others."""
        out: list[_Call] = []
        for call in calls:
            attrs = call.span.attributes
            if call.span.status != "ok":
                result.stats["num_error_calls"] += 1
                continue
            call.prompt = _token_ids(attrs.get("prompt_token_ids"))
            call.response = _token_ids(attrs.get("response_token_ids"))
            if call.prompt is None or call.response is None:
                result.stats["num_without_token_ids"] += 1
                continue
            call.logprobs = self._logprobs(call, result.problems)
            out.append(call)
        return out

    @staticmethod
    def _logprobs(call: _Call, problems: list[str]) -> list[float] | None:
        raw = call.span.attributes.get("logprobs")
        if raw is None:
            return None
        assert call.response is not None
        values = [_number(v) for v in raw] if isinstance(raw, list) else []
        if len(values) != len(call.response) or any(v is None for v in values):
            size = len(raw) if isinstance(raw, list) else type(raw).__name__
            problems.append(f"llm.call seq={call.span.sequence_id}: logprobs ({size}) do not match the "
                            f"{len(call.response)} response tokens or are not finite numbers; logprobs dropped")
            return None
        return [v for v in values if v is not None]

    @staticmethod
    def _resolve_agents(calls: list[_Call], trainable: list[_Call], requests: list[Span]) -> None:
        """Agent name per call: its own AGENT_NAME, else the earliest unused LLM_REQUEST with the same digest."""
        unused = list(requests)
        trainable_ids = {id(c) for c in trainable}
        for call in trainable + [c for c in calls if id(c) not in trainable_ids]:
            own = call.span.attributes.get(semconv.AGENT_NAME)
            if own:
                call.agent = str(own)
                continue
            request = call.span.attributes.get("request")
            messages = request.get("messages") if isinstance(request, dict) else None
            if not isinstance(messages, list):
                continue
            digest = semconv.messages_digest(messages)
            for i, span in enumerate(unused):
                if span.attributes.get(semconv.MESSAGES_DIGEST) == digest:
                    name = span.attributes.get(semconv.AGENT_NAME)
                    call.agent = str(name) if name else None
                    del unused[i]
                    break

    def _filter_agents(self, trainable: list[_Call], result: AdapterResult) -> list[_Call]:
        if self._agent_re is None:
            return list(trainable)
        kept = [c for c in trainable if c.agent is not None and self._agent_re.search(c.agent)]
        result.stats["num_filtered_by_agent_match"] = len(trainable) - len(kept)
        return kept

    @staticmethod
    def _attach_rewards(ordered: list[Span], kept: list[_Call], result: AdapterResult) -> float | None:
        """Credit each reward to the latest kept call before it; returns the attempt's last reward value."""
        by_span = {id(c.span): c for c in kept}
        latest: _Call | None = None
        final: float | None = None
        for span in ordered:
            if id(span) in by_span:
                latest = by_span[id(span)]
            if span.name != semconv.REWARD:
                continue
            value = _reward_value(span, result.problems)
            if value is None:
                continue
            final = value
            if latest is None:
                result.stats["rewards_before_any_call"] += 1
                result.problems.append(f"reward {value} (seq={span.sequence_id}) came before any trainable "
                                       "(and agent-matched) llm.call; it is not credited to a turn")
            else:
                latest.rewards.append(value)
        return final

    # ------------------------------------------------------------------ triplets
    def _triplets(self, kept: list[_Call], rollout_id: str | None, result: AdapterResult) -> list[Triplet]:
        if self.mode == "transition":
            groups = [[c] for c in kept]
        else:
            groups = self._group_trajectory(kept, rollout_id, result)
        return [self._merge(group) for group in groups]

    @staticmethod
    def _group_trajectory(kept: list[_Call], rollout_id: str | None, result: AdapterResult) -> list[list[_Call]]:
        """Runs of consecutive calls of one agent where each call's prompt+response prefixes the next prompt."""
        groups: list[list[_Call]] = []
        for call in kept:
            if not groups or groups[-1][-1].agent != call.agent:
                groups.append([call])
                continue
            prev = groups[-1][-1]
            assert prev.prompt is not None and prev.response is not None and call.prompt is not None
            expected = prev.prompt + prev.response
            index = _first_mismatch(expected, call.prompt)
            if index == len(expected):
                groups[-1].append(call)
                continue
            result.stats["merge_failures"] += 1
            where = ("inside the previous response (re-tokenized answer?)" if index >= len(prev.prompt)
                     else "inside the previous prompt (new conversation, or a template that rewrites history?)")
            got = call.prompt[index] if index < len(call.prompt) else "end of prompt"
            message = (f"rollout {rollout_id}: trajectory merge failed at llm.call seq={call.span.sequence_id}: "
                       f"prompt differs from previous prompt+response at token {index} of {len(expected)} (expected "
                       f"id {expected[index]}, got {got}), {where}; kept as a separate sample")
            result.problems.append(message)
            logger.log(logging.WARNING if index >= len(prev.prompt) else logging.INFO, message)
            groups.append([call])
        return groups

    @staticmethod
    def _merge(group: list[_Call]) -> Triplet:
        """One triplet from calls whose prefix property was checked (a single call in transition mode)."""
        first = group[0]
        assert first.prompt is not None and first.response is not None
        response, mask = list(first.response), [1] * len(first.response)
        has_logprobs = all(c.logprobs is not None for c in group)
        logprobs: list[float] = list(first.logprobs or []) if has_logprobs else []
        covered = len(first.prompt) + len(first.response)
        for call in group[1:]:
            assert call.prompt is not None and call.response is not None
            inserted = call.prompt[covered:]
            response += inserted + call.response
            mask += [0] * len(inserted) + [1] * len(call.response)
            if has_logprobs:
                logprobs += [0.0] * len(inserted) + list(call.logprobs or [])
            covered = len(call.prompt) + len(call.response)
        if len(mask) != len(response) or (has_logprobs and len(logprobs) != len(response)):
            raise RuntimeError(f"adapter bug: response {len(response)}, mask {len(mask)}, logprobs {len(logprobs)}")
        rewards = [c.reward for c in group if c.reward is not None]
        return Triplet(prompt_token_ids=list(first.prompt), response_token_ids=response,
                       logprobs=logprobs if has_logprobs else None, response_mask=mask,
                       reward=sum(rewards) if rewards else None,
                       metadata={"agent_name": first.agent, "sequence_ids": [c.span.sequence_id for c in group]})

    @staticmethod
    def _finish_metadata(result: AdapterResult, rollout_id: str | None, attempt_id: str | None,
                         data_id: str | None) -> None:
        for index, triplet in enumerate(result.triplets):
            triplet.metadata.update(rollout_id=rollout_id, attempt_id=attempt_id, data_id=data_id,
                                    turn_index=index, final_reward=result.final_reward)

    def _empty_reason(self, calls: list[_Call], trainable: list[_Call], num_spans: int) -> str:
        """Why zero triplets came out, in words that point at the fix."""
        if not calls:
            return (f"no llm.call spans ({num_spans} spans of other kinds); is the agent calling the proxy URL "
                    "(ProxyLLM.with_attempted_rollout) rather than the model server directly?")
        if not trainable:
            errors = sum(1 for c in calls if c.span.status != "ok")
            if errors == len(calls):
                first = calls[0].span.attributes.get("error")
                return f"{len(calls)} llm.call spans but all failed (status error; first error: {first!r})"
            if errors == 0:
                return f"{len(calls)} llm.call spans but none has token IDs ({_NO_IDS_HINT})"
            return (f"{len(calls)} llm.call spans but none is trainable: {errors} failed, {len(calls) - errors} "
                    f"without token IDs ({_NO_IDS_HINT})")
        agents = sorted({c.agent for c in trainable if c.agent is not None})
        unknown = sum(1 for c in trainable if c.agent is None)
        extra = f" ({unknown} calls of unknown agent: no AGENT_NAME and no matching LLM_REQUEST span)" if unknown else ""
        return f"agent_match {self.agent_match!r} matched none of the agents {agents}{extra}"


def _agent_metrics(spans: Sequence[Span]) -> dict[str, float]:
    """The attempt's `emit_metrics` values, summed per key (malformed values are skipped)."""
    out: dict[str, float] = {}
    for span in spans:
        values = span.attributes.get("values") if span.name == semconv.METRICS else None
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[str(key)] = out.get(str(key), 0.0) + float(value)
    return out
