"""Step records (agentlightning/verl/records.py): the rows of an updated batch come back without padding, with their
mask, log-probs, advantages and reward position; every rollout says whether it reached the update and why not."""

from __future__ import annotations

from pathlib import Path

import torch

from agentlightning.types import Triplet
from agentlightning.verl import records
from agentlightning.verl.batch import BatchConfig, RolloutSamples, build_batch


def _triplet(prompt: list[int], response: list[int], mask: list[int], seqs: list[int], turn: int = 0) -> Triplet:
    return Triplet(prompt_token_ids=prompt, response_token_ids=response, response_mask=mask,
                   logprobs=[-0.5] * len(response), metadata={"sequence_ids": seqs, "turn_index": turn})


def test_batch_rows_come_back_as_the_update_saw_them(tmp_path: Path) -> None:
    samples = [RolloutSamples("r1", "task-a", [_triplet([5, 6, 7], [8, 9, 10, 2], [1, 0, 1, 1], [1, 3])], 1.0),
               RolloutSamples("r2", "task-a", [_triplet([5], [11, 2], [1, 1], [1])], 0.0)]
    data = build_batch(samples, BatchConfig(16, 16, pad_token_id=0)).data
    mask = data.batch["response_mask"].float()
    data.batch["advantages"] = mask * torch.tensor([[0.7], [-0.7]])  # what verl's GRPO writes: per token, masked
    rows = records.batch_samples(data, {("r1", 0): [1, 3], ("r2", 0): [1]})
    first, second = rows
    assert first["prompt_ids"] == [5, 6, 7] and first["response_ids"] == [8, 9, 10, 2]  # padding gone
    assert first["response_mask"] == [1, 0, 1, 1] and first["sequence_ids"] == [1, 3] and first["group"] == "task-a"
    assert first["advantages"] == [0.7, 0.0, 0.7, 0.7] and first["logprobs"] == [-0.5] * 4
    assert first["reward"] == 1.0 and first["reward_index"] == 3  # on the last response token
    assert second["prompt_ids"] == [5] and second["response_ids"] == [11, 2] and second["advantages"] == [-0.7, -0.7]

    rollouts = [{"rollout_id": "r1", "data_id": "task-a", "status": "succeeded", "reward": 1.0, "turns": 1},
                {"rollout_id": "r2", "data_id": "task-a", "status": "succeeded", "reward": 0.0, "turns": 1},
                {"rollout_id": "r3", "data_id": "task-b", "status": "succeeded", "reward": 1.0, "turns": 1},
                {"rollout_id": "r4", "data_id": "task-b", "status": "succeeded", "reward": 1.0, "turns": 1},
                {"rollout_id": "r5", "data_id": "task-c", "status": "failed", "cause": "infra", "reward": None,
                 "turns": 0},
                {"rollout_id": "r6", "data_id": "task-c", "status": "succeeded", "reward": 1.0, "turns": 2},
                {"rollout_id": "r7", "data_id": "task-d", "status": "succeeded", "reward": 0.0, "turns": 0,
                 "empty_reason": "no llm.call spans"}]
    marked = {r["rollout_id"]: r for r in records.mark_update(rollouts, rows)}
    assert marked["r1"]["in_update"] and marked["r2"]["in_update"] and marked["r1"]["why_not"] is None
    assert "no reward variance" in marked["r3"]["why_not"]
    assert "infrastructure" in marked["r5"]["why_not"] and "infrastructure" in marked["r6"]["why_not"]
    assert marked["r7"]["why_not"] == "no samples: no llm.call spans"

    records.write_step(tmp_path, 3, rollouts, rows)
    records.write_step(tmp_path, 12, [], [])
    assert records.step_numbers(tmp_path) == [3, 12] and not list((tmp_path / "steps").glob("*.partial"))
    again = records.read_step(tmp_path, 3)
    assert again is not None and again["policy_version"] == 2 and again["samples"] == rows
    assert records.read_step(tmp_path, 4) is None
