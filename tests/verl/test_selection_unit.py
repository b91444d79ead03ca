"""Checkpoint selection (agentlightning/verl/selection.py) without a model: the held-out split, the best-so-far record
on disk, and the keep/restore decisions (`keep_or_restore`) against a FAKE policy and FAKE selection scores. The real verl
checkpoint save, load and weight push of a selection run are in test_fit_e2e.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agentlightning.verl.config import compose_config
from agentlightning.verl.selection import Best, carve, keep_or_restore


def test_carve_holds_out_the_same_tasks_every_time_and_keeps_the_rest_in_order() -> None:
    tasks = [{"id": i} for i in range(50)]
    train, held = carve(tasks, 10, batch_size=4)
    assert len(held) == 10 and len(train) == 40
    assert sorted(t["id"] for t in train + held) == list(range(50))  # a partition: nothing lost, nothing twice
    assert [t["id"] for t in train] == sorted(t["id"] for t in train)
    assert carve(tasks, 10, batch_size=4) == (train, held)  # fixed: every run and seed selects on the same tasks
    assert carve(tasks, 0, batch_size=4) == (tasks, [])


def test_carve_refuses_to_leave_less_than_a_batch() -> None:
    with pytest.raises(ValueError, match=r"holdout=48 of 50 training tasks leaves 2, fewer than "
                                         r"data.train_batch_size=4\. Fix"):
        carve([{"id": i} for i in range(50)], 48, batch_size=4)


def test_best_keeps_ties_for_the_later_step_and_restores_only_a_strictly_better_one(tmp_path: Path) -> None:
    best = Best(tmp_path, run="r1")
    assert best.to_restore(0.0) is None  # nothing kept yet
    assert best.offer(0.5)
    best.kept(2, 0.5)
    assert best.offer(0.5)  # a tie goes to the later weights
    assert not best.offer(0.4)
    assert best.to_restore(0.5) is None and best.to_restore(0.4) == 2


def test_best_survives_a_resume_of_its_own_run_only(tmp_path: Path) -> None:
    Best(tmp_path, run="r1").kept(6, 0.75)
    assert (Best.load(tmp_path, "r1").step, Best.load(tmp_path, "r1").score) == (6, 0.75)
    other = Best.load(tmp_path, "r2")  # a stale record of another run in the same output folder is not trusted
    assert (other.step, other.to_restore(0.0)) == (-1, None)


@pytest.mark.parametrize("override, message", [
    ("agentlightning.selection.holdout=-1", r"selection.holdout=-1.*Fix: agentlightning.selection.holdout=40"),
    ("agentlightning.selection.freq=0", r"selection.freq=0.*at least 1"),
    ("+agentlightning.selection.every=2", r"unknown keys \['every'\]"),
    ("agentlightning.selection.holdout=true", r"selection.holdout=True"),
])
def test_bad_selection_settings_are_explained(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compose_config("agentlightning", [override])


def test_selection_refuses_verls_checkpoint_rotation() -> None:
    with pytest.raises(ValueError, match=r"max_actor_ckpt_to_keep=2: verl's checkpoint manager rotates.*Fix"):
        compose_config("agentlightning", ["agentlightning.selection.holdout=10", "trainer.max_actor_ckpt_to_keep=2"])
    compose_config("agentlightning", ["trainer.max_actor_ckpt_to_keep=2"])  # without selection: allowed


class FakePolicy:
    """Records what the loop asks of verl's policy: checkpoints saved/loaded and weight pushes."""

    served_model = "policy"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def save_checkpoint(self, folder: Path, step: int, max_to_keep: int | None = None) -> None:
        Path(folder).mkdir(parents=True)
        (Path(folder) / "weights").write_text(str(step))
        self.calls.append(("save", step))

    def load_checkpoint(self, folder: Path) -> None:
        self.calls.append(("load", (Path(folder) / "weights").read_text()))

    def push_weights(self, step: int) -> dict[str, float]:
        self.calls.append(("push", step))
        return {}


def _select_run(tmp_path: Path, scores: dict[int, float], total: int) -> tuple[FakePolicy, list[dict[str, float]]]:
    """The loop's selection at each step of `scores` (FAKE `select/accuracy` values) against the FAKE policy."""
    policy, best = FakePolicy(), Best(tmp_path / "best", run="r1")
    out = [asyncio.run(keep_or_restore({"select/accuracy": score}, policy, best, step, total))
           for step, score in sorted(scores.items())]
    return policy, out


def test_the_loop_keeps_the_best_step_and_restores_it_when_the_last_is_worse(tmp_path: Path) -> None:
    policy, out = _select_run(tmp_path, {2: 0.5, 4: 0.8, 6: 0.8, 8: 0.6, 10: 0.7}, total=10)
    # step 2 kept, 4 better, 6 ties (the later is kept), 8 worse (nothing saved); 10 < 0.8: step 6 comes back
    assert policy.calls == [("save", 2), ("save", 4), ("save", 6), ("load", "6"), ("push", 10)]
    assert [o["select/best_step"] for o in out] == [2, 4, 6, 6, 6]
    assert out[-1]["select/restored_step"] == 6 and "select/restored_step" not in out[-2]
    assert Best.load(tmp_path / "best", "r1").step == 6


def test_the_last_step_stays_when_it_scores_as_well_and_is_never_copied(tmp_path: Path) -> None:
    policy, out = _select_run(tmp_path, {2: 0.5, 4: 0.8, 6: 0.8}, total=6)
    assert policy.calls == [("save", 2), ("save", 4)]  # the last step's weights are the final checkpoint itself
    assert "select/restored_step" not in out[-1] and out[-1]["select/best_step"] == 6
