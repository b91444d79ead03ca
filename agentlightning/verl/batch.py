"""Triplets → verl `DataProto`: the batch verl's old-log-prob, advantage and actor-update steps consume.

Where this sits: … spans → adapter → triplets → **verl batch** → PPO/GRPO update → new weights → vLLM.

Layout (B samples, P = longest kept prompt, R = longest kept response in this batch):
- `prompts` (B,P) left-padded; `responses` (B,R) right-padded; `input_ids` = [prompts | responses] (B,P+R);
- `attention_mask` (B,P+R): 1 on every real token (tool/observation tokens inside a merged response included: they
  are context), 0 on padding; `position_ids` = cumsum(attention_mask) - 1, clipped at 0 (verl's own formula);
- `response_mask` (B,R): the triplet's `response_mask` (1 = model-generated, 0 = inserted tool/observation tokens)
  or all 1 on real tokens; 0 on padding. Loss and advantages only see mask-1 tokens;
- `token_level_scores` and `rm_scores` (B,R): the sample's scalar reward on its last real response token, 0 elsewhere;
- `rollout_log_probs` (B,R) when every triplet carries the sampler's logprobs (0 on padding);
- non-tensor: `uid` (GRPO group id = the task's data id), `multi_modal_inputs` (empty dicts: verl reads it always),
  `agl_rollout_id`, `agl_turn_index`, `agl_is_last_turn`.

Credit assignment (`credit_assignment`):
- `identical`: every turn of a rollout gets the rollout's final reward; GRPO groups all turns of all rollouts of a
  task together (Agent Lightning's behaviour). A rollout with k turns enters the group statistics k times.
- `rollout_level`: the advantage is computed once per rollout — on one representative row per rollout (its last
  kept turn, which carries the final reward) with verl's estimator — and broadcast to every turn of that rollout.
  Group mean/std are then over rollouts, not turns, so long rollouts no longer bias the baseline. With
  `normalize_turns=True` each turn gets advantage / (number of turns), so a rollout's total weight in the loss does
  not grow with its number of turns. Only outcome estimators (one scalar per sample: grpo, rloo, ...) make sense here.

Over-long samples (`overlong`): `truncate` keeps the last `max_prompt_length` prompt tokens and the first
`max_response_length` response tokens (reward moves to the last kept token); `drop` leaves the triplet out. Both are
counted in `BatchStats`. Empty responses are always dropped and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from agentlightning.types import Triplet

__all__ = [
    "BatchConfig",
    "BatchStats",
    "BuiltBatch",
    "RolloutSamples",
    "apply_rollout_level_advantages",
    "build_batch",
]

CreditAssignment = Literal["identical", "rollout_level"]
Overlong = Literal["truncate", "drop"]


@dataclass(frozen=True)
class BatchConfig:
    """How triplets become a batch. `pad_token_id` comes from the tokenizer (pad, else eos)."""

    max_prompt_length: int
    max_response_length: int
    pad_token_id: int
    overlong: Overlong = "truncate"
    credit_assignment: CreditAssignment = "identical"
    normalize_turns: bool = True
    missing_reward: float = 0.0

    def __post_init__(self) -> None:
        for name in ("max_prompt_length", "max_response_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"BatchConfig.{name}={getattr(self, name)} must be >= 1 (tokens); set it to the "
                                 "longest prompt/response you want to train on")
        if self.overlong not in ("truncate", "drop"):
            raise ValueError(f"BatchConfig.overlong={self.overlong!r} must be 'truncate' or 'drop'")
        if self.credit_assignment not in ("identical", "rollout_level"):
            raise ValueError(f"BatchConfig.credit_assignment={self.credit_assignment!r} must be 'identical' or "
                             "'rollout_level'")


@dataclass
class RolloutSamples:
    """One finished rollout: its triplets (in turn order), its final reward and its GRPO group (the task's data id)."""

    rollout_id: str
    group_id: str
    triplets: Sequence[Triplet]
    final_reward: float | None


@dataclass
class BatchStats:
    """What happened to the triplets on their way into the batch (counted, never silent)."""

    num_rollouts: int = 0
    num_triplets: int = 0
    num_samples: int = 0
    truncated_prompts: int = 0
    truncated_responses: int = 0
    dropped_overlong: int = 0
    dropped_empty: int = 0
    rollouts_without_samples: int = 0
    missing_rewards: int = 0

    def as_metrics(self, prefix: str = "batch/") -> dict[str, float]:
        return {f"{prefix}{k}": float(v) for k, v in vars(self).items()}


@dataclass
class BuiltBatch:
    """The `DataProto` plus bookkeeping (`stats`; `rollout_rewards` per rollout id; `turns` per rollout id)."""

    data: Any
    stats: BatchStats
    rollout_rewards: dict[str, float] = field(default_factory=dict)
    turns: dict[str, int] = field(default_factory=dict)


@dataclass
class _Row:
    prompt: list[int]
    response: list[int]
    mask: list[int]
    logprobs: list[float] | None
    reward: float
    uid: str
    rollout_id: str
    turn: int


def _clip(triplet: Triplet, cfg: BatchConfig, stats: BatchStats) -> tuple[list[int], list[int], list[int],
                                                                         list[float] | None] | None:
    prompt, response = list(triplet.prompt_token_ids), list(triplet.response_token_ids)
    mask = list(triplet.response_mask) if triplet.response_mask is not None else [1] * len(response)
    logprobs = list(triplet.logprobs) if triplet.logprobs is not None else None
    if not response or not any(mask):
        stats.dropped_empty += 1
        return None
    too_long_prompt, too_long_response = len(prompt) > cfg.max_prompt_length, len(response) > cfg.max_response_length
    if too_long_prompt or too_long_response:
        if cfg.overlong == "drop":
            stats.dropped_overlong += 1
            return None
        if too_long_prompt:
            stats.truncated_prompts += 1
            prompt = prompt[-cfg.max_prompt_length:]
        if too_long_response:
            stats.truncated_responses += 1
            response, mask = response[: cfg.max_response_length], mask[: cfg.max_response_length]
            logprobs = logprobs[: cfg.max_response_length] if logprobs is not None else None
            if not any(mask):
                stats.dropped_empty += 1
                return None
    return prompt, response, mask, logprobs


def build_batch(rollouts: Sequence[RolloutSamples], cfg: BatchConfig) -> BuiltBatch:
    """Turn finished rollouts into one verl `DataProto` (see the module docstring for the layout)."""
    from verl import DataProto

    stats = BatchStats(num_rollouts=len(rollouts))
    rows: list[_Row] = []
    rewards: dict[str, float] = {}
    turns: dict[str, int] = {}
    for ro in rollouts:
        reward = ro.final_reward
        if reward is None:
            stats.missing_rewards += 1
            reward = cfg.missing_reward
        rewards[ro.rollout_id] = float(reward)
        kept = 0
        for turn, triplet in enumerate(ro.triplets):
            stats.num_triplets += 1
            clipped = _clip(triplet, cfg, stats)
            if clipped is None:
                continue
            prompt, response, mask, logprobs = clipped
            rows.append(_Row(prompt, response, mask, logprobs, float(reward), str(ro.group_id), ro.rollout_id,
                             int(triplet.metadata.get("turn_index", turn))))
            kept += 1
        turns[ro.rollout_id] = kept
        if kept == 0:
            stats.rollouts_without_samples += 1
    if not rows:
        raise ValueError(f"no trainable samples in {len(rollouts)} rollouts ({stats}). Why: every triplet was empty, "
                         "over-long with overlong='drop', or the adapter found no token IDs. Fix: check the adapter's "
                         "empty_reason per rollout, raise max_prompt_length/max_response_length, or use 'truncate'")
    stats.num_samples = len(rows)

    b, p_len, r_len = len(rows), max(len(r.prompt) for r in rows), max(len(r.response) for r in rows)
    pad = cfg.pad_token_id
    prompts = torch.full((b, p_len), pad, dtype=torch.long)
    responses = torch.full((b, r_len), pad, dtype=torch.long)
    prompt_attn = torch.zeros((b, p_len), dtype=torch.long)
    response_attn = torch.zeros((b, r_len), dtype=torch.long)
    response_mask = torch.zeros((b, r_len), dtype=torch.long)
    scores = torch.zeros((b, r_len), dtype=torch.float32)
    with_logprobs = all(r.logprobs is not None for r in rows)
    rollout_log_probs = torch.zeros((b, r_len), dtype=torch.float32)
    last_turn: dict[str, int] = {}
    for i, row in enumerate(rows):
        n_p, n_r = len(row.prompt), len(row.response)
        prompts[i, p_len - n_p:] = torch.tensor(row.prompt, dtype=torch.long)
        prompt_attn[i, p_len - n_p:] = 1
        responses[i, :n_r] = torch.tensor(row.response, dtype=torch.long)
        response_attn[i, :n_r] = 1
        response_mask[i, :n_r] = torch.tensor(row.mask, dtype=torch.long)
        scores[i, n_r - 1] = row.reward
        if with_logprobs:
            rollout_log_probs[i, :n_r] = torch.tensor(row.logprobs, dtype=torch.float32)
        if row.rollout_id not in last_turn or row.turn >= rows[last_turn[row.rollout_id]].turn:
            last_turn[row.rollout_id] = i
    attention_mask = torch.cat([prompt_attn, response_attn], dim=1)
    tensors: dict[str, torch.Tensor] = {
        "prompts": prompts,
        "responses": responses,
        "response_mask": response_mask,
        "input_ids": torch.cat([prompts, responses], dim=1),
        "attention_mask": attention_mask,
        "position_ids": torch.clip(torch.cumsum(attention_mask, dim=-1) - 1, min=0),
        "token_level_scores": scores,
        "rm_scores": scores.clone(),
    }
    if with_logprobs:
        tensors["rollout_log_probs"] = rollout_log_probs
    last_rows = set(last_turn.values())
    non_tensors = {
        "uid": np.array([r.uid for r in rows], dtype=object),
        "multi_modal_inputs": np.array([{} for _ in rows], dtype=object),
        "agl_rollout_id": np.array([r.rollout_id for r in rows], dtype=object),
        "agl_turn_index": np.array([r.turn for r in rows], dtype=object),
        "agl_is_last_turn": np.array([i in last_rows for i in range(b)], dtype=object),
    }
    data = DataProto.from_dict(tensors=tensors, non_tensors=non_tensors)
    return BuiltBatch(data=data, stats=stats, rollout_rewards=rewards, turns=turns)


def apply_rollout_level_advantages(data: Any, compute: Callable[[Any], Any], normalize_turns: bool = True) -> Any:
    """`rollout_level` credit assignment: run `compute` (verl's `compute_advantage` with its arguments bound) on one
    representative row per rollout (`agl_is_last_turn`), then write each rollout's scalar advantage onto every token
    of all its turns (`advantages` = `returns` = A * response_mask, divided by the rollout's turn count when
    `normalize_turns`). Returns `data` with `advantages` and `returns` set."""
    is_last = np.asarray(data.non_tensor_batch["agl_is_last_turn"], dtype=bool)
    rollout_ids = data.non_tensor_batch["agl_rollout_id"]
    rep_index = np.nonzero(is_last)[0]
    if len(rep_index) != len(set(rollout_ids)):
        raise ValueError(f"rollout_level credit assignment needs exactly one representative row per rollout; found "
                         f"{len(rep_index)} for {len(set(rollout_ids))} rollouts. Fix: build the batch with build_batch")
    representatives = compute(data.select_idxs(rep_index))
    rep_adv = representatives.batch["advantages"]
    rep_mask = representatives.batch["response_mask"].to(rep_adv.dtype)
    # Outcome estimators give the same value on every valid token; take it from the masked mean.
    scalar = (rep_adv * rep_mask).sum(-1) / rep_mask.sum(-1).clamp(min=1)
    per_rollout = {rollout_ids[i]: float(scalar[k]) for k, i in enumerate(rep_index)}
    counts: dict[str, int] = {}
    for rid in rollout_ids:
        counts[rid] = counts.get(rid, 0) + 1
    values = torch.tensor([per_rollout[rid] / (counts[rid] if normalize_turns else 1) for rid in rollout_ids],
                          dtype=torch.float32)
    mask = data.batch["response_mask"].to(torch.float32)
    data.batch["advantages"] = values[:, None] * mask
    data.batch["returns"] = data.batch["advantages"].clone()
    return data
