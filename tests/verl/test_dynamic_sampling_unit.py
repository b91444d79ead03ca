"""verl's `filter_groups` dynamic sampling in the training loop, against a FAKE trainer session (no model): more task
batches are played until `train_batch_size` groups have episodes with different rewards, at most
`max_num_gen_batches` per step; surplus informative groups are dropped; the data cursor moves past every batch drawn.
The real loop runs in test_fit_e2e.py and the calc_x recipe test."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from agentlightning.adapter import AdapterResult
from agentlightning.types import Attempt, Triplet
from agentlightning.verl.algorithm import VerlAlgorithm, _informative_groups, _TaskDraws
from agentlightning.verl.batch import RolloutSamples


class FakeSession:
    """Plays each task's episodes with the rewards in `task["rewards"]` (one per episode); records what ran."""

    def __init__(self) -> None:
        self.played: list[list[str]] = []
        self.attempts: dict[str, Attempt] = {}
        self.store = SimpleNamespace(add_resources=self._add_resources, get_latest_attempt=self._latest_attempt)
        self.proxy = SimpleNamespace(as_resource=lambda **kw: kw)

    async def _add_resources(self, resources: Any) -> Any:
        return SimpleNamespace(resources_id="res-1")

    async def _latest_attempt(self, rollout_id: str) -> Attempt | None:
        return self.attempts.get(rollout_id)

    async def run_rollouts(self, tasks: list[Any], mode: str, resources_id: str, config: Any = None, metadata: Any = None,
                           progress: Any = None) -> list[Any]:
        self.played.append(sorted({t["id"] for t in tasks}))
        seen: dict[str, int] = {}
        out = []
        for task in tasks:
            k = seen[task["id"]] = seen.get(task["id"], -1) + 1
            # "unresponsive": its runner was killed (the infrastructure's failure); "failed:infra"/"failed:agent":
            # the attempt failed with that recorded cause (runner.failure_cause)
            outcome, rid = task["rewards"][k], f"{task['id']}-{len(self.played)}-{k}"
            if isinstance(outcome, str):
                status, _, cause = outcome.partition(":")
                self.attempts[rid] = Attempt(attempt_id=f"a-{rid}", rollout_id=rid, sequence_id=2, status=status,
                                             metadata={"cause": cause} if cause else {})
            out.append(SimpleNamespace(rollout_id=rid, status="failed" if isinstance(outcome, str) else "succeeded",
                                       reward=outcome))
        return out

    async def collect(self, rollout: Any, data_id: str | None = None) -> AdapterResult:
        triplet = Triplet(prompt_token_ids=[1], response_token_ids=[2])
        reward = rollout.reward if rollout.status == "succeeded" else None  # a failed one reported no reward
        return AdapterResult(triplets=[triplet], final_reward=reward, metrics={"calls": 1.0})


def _algorithm() -> VerlAlgorithm:
    algorithm = VerlAlgorithm.__new__(VerlAlgorithm)  # only _rollouts is exercised: no config needed beyond this
    algorithm.agl = SimpleNamespace(sampling={"temperature": 0.7}, metrics_by=None)  # type: ignore[assignment]
    algorithm.run_tag = "run-1"
    return algorithm


def _task(i: int, informative: bool) -> tuple[str, dict[str, Any]]:
    return f"t{i}", {"id": f"t{i}", "rewards": [1.0, 0.0] if informative else [1.0, 1.0]}


def test_refills_until_enough_groups_carry_signal() -> None:
    data = [_task(0, False), _task(1, True), _task(2, False), _task(3, False), _task(4, True), _task(5, True)]
    draws = _TaskDraws(lambda train, cursor, count: train[cursor: cursor + count], data, 0, 2, limit=3)
    session = FakeSession()
    samples, stats = asyncio.run(_algorithm()._rollouts(session, draws.next(), 2, "train", 0, "policy",
                                                        refill=draws.next, groups_wanted=2))
    assert session.played == [["t0", "t1"], ["t2", "t3"], ["t4", "t5"]]  # t1 alone was not enough; then t4
    assert stats["batch/gen_batches"] == 3 and stats["rollout/count"] == 12 and draws.cursor == 6
    assert stats["batch/groups_surplus_dropped"] == 1  # t5 was informative too, but 2 groups were wanted
    assert sorted({s.group_id for s in samples}) == ["t0", "t1", "t2", "t3", "t4"]  # uniform ones: the step drops
    assert stats["agent/calls"] == 1.0


@pytest.mark.parametrize("outcome", ["unresponsive", "timeout", "failed:infra", "failed"])
def test_an_infra_failed_rollout_takes_its_group_out_of_training(outcome: str) -> None:
    """A rollout the infrastructure failed (runner killed, over its deadline, endpoint/tool server/store away, or
    failed with no recorded cause) is never scored 0: its group leaves the batch, and dynamic sampling plays more."""
    broken = ("t1", {"id": "t1", "rewards": [1.0, outcome]})
    data = [_task(0, True), broken, _task(2, True), _task(3, True)]
    draws = _TaskDraws(lambda train, cursor, count: train[cursor: cursor + count], data, 0, 2, limit=3)
    samples, stats = asyncio.run(_algorithm()._rollouts(FakeSession(), draws.next(), 2, "train", 0, "policy",
                                                        refill=draws.next, groups_wanted=2))
    assert stats["rollout/failed"] == 1 and stats["rollout/infra_failed"] == 1
    assert stats["batch/groups_incomplete"] == 1 and stats["batch/gen_batches"] == 2
    assert sorted({s.group_id for s in samples}) == ["t0", "t2"] and all(s.final_reward is not None for s in samples)
    assert stats["accuracy"] == 4 / 8  # of the rollouts played, a failed one counts as not rewarded
    _samples, stats = asyncio.run(_algorithm()._rollouts(FakeSession(), [broken], 2, "val", 0, "policy"))
    assert stats["batch/groups_incomplete"] == 0 and stats["accuracy"] == 0.5  # validation: failed = wrong


def test_an_agent_failed_rollout_is_an_episode_with_reward_zero() -> None:
    """The agent's own failure (it raised on a reply it could not handle) stays in its group, scored 0, with the
    calls it made: that is a lesson for the policy, not noise from the infrastructure."""
    data = [("t0", {"id": "t0", "rewards": [1.0, "failed:agent"]}), _task(1, True)]
    samples, stats = asyncio.run(_algorithm()._rollouts(FakeSession(), data, 2, "train", 0, "policy"))
    assert stats["rollout/failed"] == 1 and stats["rollout/infra_failed"] == 0 and stats["batch/groups_incomplete"] == 0
    assert sorted((s.group_id, s.final_reward) for s in samples) == [("t0", 0.0), ("t0", 1.0), ("t1", 0.0), ("t1", 1.0)]
    assert _informative_groups(samples) == ["t0", "t1"] and stats["accuracy"] == 2 / 4


def test_stops_at_max_num_gen_batches_and_without_refill() -> None:
    data = [_task(i, False) for i in range(10)]
    draws = _TaskDraws(lambda train, cursor, count: train[cursor: cursor + count], data, 0, 2, limit=2)
    session = FakeSession()
    _samples, stats = asyncio.run(_algorithm()._rollouts(session, draws.next(), 2, "train", 0, "policy",
                                                         refill=draws.next, groups_wanted=2))
    assert len(session.played) == 2 and stats["batch/gen_batches"] == 2 and draws.cursor == 4
    session = FakeSession()
    _samples, stats = asyncio.run(_algorithm()._rollouts(session, data[:2], 2, "val", 0, "policy"))
    assert len(session.played) == 1 and "batch/gen_batches" not in stats


@pytest.mark.parametrize(("rewards", "expected"), [([1.0, 0.0], ["g"]), ([1.0, 1.0], []), ([None, 0.0], [])])
def test_informative_groups(rewards: list[float | None], expected: list[str]) -> None:
    samples = [RolloutSamples(f"r{i}", "g", [], r) for i, r in enumerate(rewards)]
    assert _informative_groups(samples) == expected


def test_a_resumed_step_reuses_finished_rollouts_and_plays_only_the_rest() -> None:
    """The first step of a run resumed after a crash: finished rollouts of the same policy version, task batch and
    task stand in for that task's episodes (`rollout/reused`); only the missing ones are played."""
    session = FakeSession()
    finished = [SimpleNamespace(rollout_id=f"old-t0-{k}", status="succeeded", reward=float(k)) for k in range(2)]
    reuse = {(1, "t0"): finished, (1, "t1"): finished[:1], (2, "t9"): finished}  # t9 is not played in batch 1
    samples, stats = asyncio.run(_algorithm()._rollouts(session, [_task(0, True), _task(1, True)], 2, "train", 3,
                                                        "policy", reuse=reuse))
    assert session.played == [["t1"]]  # t0 wholly reused; t1 had one of its two episodes
    assert stats["rollout/reused"] == 3 and stats["rollout/count"] == 4
    assert sorted(s.rollout_id for s in samples if s.rollout_id.startswith("old")) == ["old-t0-0", "old-t0-0", "old-t0-1"]
    assert list(reuse) == [(2, "t9")]  # what was used is taken out
