"""The DataProto builder on hand-made triplets: padding, masks, position ids, reward placement, uids, truncation,
and both credit-assignment modes (with verl's own GRPO estimator)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from agentlightning.types import Triplet
from agentlightning.verl.batch import BatchConfig, RolloutSamples, apply_rollout_level_advantages, build_batch

PAD = 0


def _t(prompt: list[int], response: list[int], mask: list[int] | None = None,
       logprobs: list[float] | None = None) -> Triplet:
    return Triplet(prompt_token_ids=prompt, response_token_ids=response, response_mask=mask, logprobs=logprobs)


def _cfg(**kw: object) -> BatchConfig:
    return BatchConfig(**{"max_prompt_length": 16, "max_response_length": 16, "pad_token_id": PAD, **kw})  # type: ignore[arg-type]


def test_padding_masks_positions_and_reward_placement() -> None:
    rollouts = [RolloutSamples("r1", "task-a", [_t([11, 12, 13], [21, 22], logprobs=[-0.1, -0.2])], 1.0),
                RolloutSamples("r2", "task-b", [_t([14], [23, 24, 25, 26], mask=[1, 0, 0, 1],
                                                   logprobs=[-0.3, 0.0, 0.0, -0.4])], 0.5)]
    built = build_batch(rollouts, _cfg())
    b = built.data.batch
    assert b["prompts"].tolist() == [[11, 12, 13], [PAD, PAD, 14]]  # left-padded
    assert b["responses"].tolist() == [[21, 22, PAD, PAD], [23, 24, 25, 26]]  # right-padded
    assert b["input_ids"].tolist() == [[11, 12, 13, 21, 22, PAD, PAD], [PAD, PAD, 14, 23, 24, 25, 26]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1, 1]]
    assert b["position_ids"].tolist() == [[0, 1, 2, 3, 4, 4, 4], [0, 0, 0, 1, 2, 3, 4]]
    assert b["response_mask"].tolist() == [[1, 1, 0, 0], [1, 0, 0, 1]]
    assert b["token_level_scores"].tolist() == [[0, 1.0, 0, 0], [0, 0, 0, 0.5]]  # last real response token
    assert torch.equal(b["rm_scores"], b["token_level_scores"])
    assert b["rollout_log_probs"][1].tolist() == pytest.approx([-0.3, 0.0, 0.0, -0.4])
    nt = built.data.non_tensor_batch
    assert list(nt["uid"]) == ["task-a", "task-b"] and list(nt["multi_modal_inputs"]) == [{}, {}]
    assert built.stats.num_samples == 2 and built.rollout_rewards == {"r1": 1.0, "r2": 0.5}


def test_identical_mode_gives_every_turn_the_final_reward_and_groups_by_task() -> None:
    turns = [_t([1, 2], [3]), _t([1, 2, 3, 4], [5, 6])]
    rollouts = [RolloutSamples("r1", "task-a", turns, 1.0), RolloutSamples("r2", "task-a", [_t([1, 2], [7])], 0.0)]
    built = build_batch(rollouts, _cfg())
    scores = built.data.batch["token_level_scores"].sum(-1).tolist()
    assert scores == [1.0, 1.0, 0.0]
    assert list(built.data.non_tensor_batch["uid"]) == ["task-a"] * 3
    assert list(built.data.non_tensor_batch["agl_is_last_turn"]) == [False, True, True]
    assert "rollout_log_probs" not in built.data.batch.keys()  # not every triplet has logprobs
    assert built.turns == {"r1": 2, "r2": 1}


def _grpo(data: object) -> object:
    from verl.trainer.ppo.ray_trainer import compute_advantage

    data.batch["token_level_rewards"] = data.batch["token_level_scores"]  # type: ignore[attr-defined]
    return compute_advantage(data, adv_estimator="grpo", num_repeat=1)  # type: ignore[arg-type]


def test_rollout_level_removes_the_turn_bias() -> None:
    # Task "a": a 3-turn rollout that failed and a 1-turn rollout that succeeded. Turn-level GRPO counts the failure
    # three times (baseline 0.25), rollout-level once (baseline 0.5): symmetric advantages of opposite sign.
    long_fail = [_t([1], [2]), _t([1, 2, 3], [4]), _t([1, 2, 3, 4, 5], [6])]
    rollouts = [RolloutSamples("long", "a", long_fail, 0.0), RolloutSamples("short", "a", [_t([1], [9])], 1.0)]
    identical = _grpo(build_batch(rollouts, _cfg()).data)
    adv_identical = identical.batch["advantages"][:, 0].tolist()
    assert adv_identical[3] == pytest.approx(1.5, abs=1e-3)  # (1 - 0.25) / std([0,0,0,1]) = 0.75 / 0.5
    assert adv_identical[0] == pytest.approx(-0.5, abs=1e-3)

    data = build_batch(rollouts, _cfg(credit_assignment="rollout_level")).data
    ranked = apply_rollout_level_advantages(data, _grpo, normalize_turns=False)
    adv = ranked.batch["advantages"][:, 0].tolist()
    assert adv[:3] == pytest.approx([-0.7071] * 3, abs=1e-3) and adv[3] == pytest.approx(0.7071, abs=1e-3)
    normalized = apply_rollout_level_advantages(build_batch(rollouts, _cfg()).data, _grpo, normalize_turns=True)
    adv_n = normalized.batch["advantages"][:, 0].tolist()
    assert sum(adv_n[:3]) == pytest.approx(-0.7071, abs=1e-3)  # the long rollout weighs like one turn in total
    # advantages only on model tokens
    assert torch.equal(ranked.batch["advantages"] != 0, ranked.batch["response_mask"].bool())


def test_rollout_level_broadcast_respects_masks_and_padding() -> None:
    rollouts = [RolloutSamples("r1", "a", [_t([1], [2, 3, 4], mask=[1, 0, 1])], 1.0),
                RolloutSamples("r2", "a", [_t([1], [5])], 0.0)]
    data = apply_rollout_level_advantages(build_batch(rollouts, _cfg()).data, _grpo)
    assert data.batch["advantages"][0].tolist() == pytest.approx([0.7071, 0.0, 0.7071], abs=1e-3)
    assert data.batch["advantages"][1].tolist() == pytest.approx([-0.7071, 0.0, 0.0], abs=1e-3)


def test_truncate_and_drop_are_counted() -> None:
    long_prompt = list(range(1, 21))
    rollouts = [RolloutSamples("r1", "a", [_t(long_prompt, [7, 8, 9])], 1.0),
                RolloutSamples("r2", "a", [_t([1], list(range(30, 40)))], 0.0)]
    built = build_batch(rollouts, _cfg(max_prompt_length=8, max_response_length=4))
    assert built.data.batch["prompts"][0].tolist() == long_prompt[-8:]  # keeps the end of the context
    assert built.data.batch["responses"][1].tolist() == [30, 31, 32, 33]
    assert built.data.batch["token_level_scores"][1].tolist() == [0, 0, 0, 0.0]
    assert (built.stats.truncated_prompts, built.stats.truncated_responses) == (1, 1)
    fits = RolloutSamples("r3", "a", [_t([1, 2], [3])], 1.0)
    dropped = build_batch([*rollouts, fits], _cfg(max_prompt_length=8, max_response_length=4, overlong="drop"))
    assert (dropped.stats.dropped_overlong, dropped.stats.num_samples) == (2, 1)
    assert dropped.stats.rollouts_without_samples == 2


def test_drop_everything_raises_with_the_cause() -> None:
    rollouts = [RolloutSamples("r1", "a", [_t(list(range(1, 21)), [7])], 1.0)]
    with pytest.raises(ValueError, match="no trainable samples"):
        build_batch(rollouts, _cfg(max_prompt_length=8, overlong="drop"))


def test_empty_responses_and_missing_rewards() -> None:
    rollouts = [RolloutSamples("r1", "a", [_t([1], [2], mask=[0]), _t([1, 2], [3])], None),
                RolloutSamples("r2", "b", [], 1.0)]
    built = build_batch(rollouts, _cfg(missing_reward=-1.0))
    assert built.stats.dropped_empty == 1 and built.stats.missing_rewards == 1
    assert built.stats.rollouts_without_samples == 1
    assert built.data.batch["token_level_scores"].sum().item() == -1.0
    assert np.asarray(built.data.non_tensor_batch["agl_is_last_turn"]).tolist() == [True]


def test_bad_config_names_value_and_fix() -> None:
    with pytest.raises(ValueError, match="credit_assignment='turn'"):
        BatchConfig(8, 8, 0, credit_assignment="turn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_prompt_length=0"):
        BatchConfig(0, 8, 0)


def test_rollout_level_advantages_with_partial_compute() -> None:
    rollouts = [RolloutSamples(f"r{i}", "a", [_t([1], [2])], float(i)) for i in range(3)]
    data = build_batch(rollouts, _cfg(credit_assignment="rollout_level")).data
    out = apply_rollout_level_advantages(data, partial(_grpo))
    assert out.batch["advantages"][:, 0].tolist() == pytest.approx([-1.0, 0.0, 1.0], abs=1e-3)
