"""PPOStep's batch handling without a model: group filtering (verl's `algorithm.filter_groups`), the no-update step,
and trimming to whole mini-batches over data-parallel ranks. The update itself is tested for real in
test_train_step_cpu.py and test_ray_policy_wiring.py."""

from __future__ import annotations

from typing import Any

import pytest
from omegaconf import OmegaConf

from agentlightning.types import Triplet
from agentlightning.verl.batch import BatchConfig, RolloutSamples, build_batch
from agentlightning.verl.ppo_step import PPOStep


class _WorkerGroup:
    def __init__(self, world_size: int) -> None:
        self.world_size = world_size


def _step(filter_groups: bool = True, mini_batches: int = 1, world_size: int = 1) -> PPOStep:
    step = PPOStep()
    step.config = OmegaConf.create({
        "algorithm": {"filter_groups": {"enable": filter_groups}},
        "data": {"train_batch_size": 4 * mini_batches},
        "actor_rollout_ref": {"actor": {"ppo_mini_batch_size": 4}, "rollout": {"temperature": 1.0}}})
    step.global_steps, step.actor_rollout_wg = 0, _WorkerGroup(world_size)
    return step


def _batch(groups: dict[str, list[float]]) -> Any:
    rollouts = [RolloutSamples(f"{uid}-{k}", uid, [Triplet(prompt_token_ids=[1, 2, 3], response_token_ids=[4, 5, 2])],
                               reward) for uid, rewards in groups.items() for k, reward in enumerate(rewards)]
    return build_batch(rollouts, BatchConfig(16, 8, 0)).data


def test_groups_with_one_reward_value_are_dropped_and_counted() -> None:
    metrics: dict[str, float] = {}
    kept = _step()._filter_groups(_batch({"mixed": [1.0, 0.0, 1.0], "all-right": [1.0, 1.0], "all-wrong": [0.0, 0.0]}),
                                  metrics)
    assert kept.non_tensor_batch["uid"].tolist() == ["mixed"] * 3
    assert kept.batch["token_level_scores"].sum(dim=-1).tolist() == [1.0, 0.0, 1.0]
    assert metrics == {"batch/groups": 3.0, "batch/groups_filtered": 2.0, "batch/samples_filtered": 4.0}
    untouched = _step(filter_groups=False)._filter_groups(_batch({"all-right": [1.0, 1.0]}), {})
    assert len(untouched) == 2


def test_a_step_without_informative_groups_skips_the_update() -> None:
    metrics = _step().step(_batch({"all-right": [1.0, 1.0, 1.0, 1.0], "all-wrong": [0.0, 0.0, 0.0, 0.0]}))
    assert metrics["batch/update_skipped"] == 1.0 and metrics["batch/groups_filtered"] == 2.0


@pytest.mark.parametrize(("mini_batches", "world_size", "size", "dropped"), [(1, 1, 7, 0), (2, 1, 7, 1), (2, 2, 7, 3)])
def test_batches_are_trimmed_to_whole_mini_batches_per_rank(mini_batches: int, world_size: int, size: int,
                                                            dropped: int) -> None:
    batch = _batch({"g": [float(i % 2) for i in range(size)]})
    trimmed, count = _step(mini_batches=mini_batches, world_size=world_size)._fit_mini_batches(batch)
    assert count == dropped and len(trimmed) == size - dropped
    with pytest.raises(ValueError, match="mini-batches per step over 2 data-parallel ranks"):
        _step(mini_batches=2, world_size=2)._fit_mini_batches(_batch({"g": [1.0, 0.0, 1.0]}))
