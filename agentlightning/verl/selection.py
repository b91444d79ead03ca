"""Checkpoint selection on a split held out of the training tasks: keep the policy that validated best, not the last.

Where this sits: inside the training loop (`algorithm.py`), after a step's weights reach vLLM.
task → store → runner → agent → proxy → vLLM → spans → adapter → verl batch → update → weights → vLLM →
**greedy episodes on the selection split → keep or drop this step's weights** → (last step) restore the best.

What it does, all of it:
1. `carve(train, holdout)`: `holdout` training tasks, drawn by a fixed permutation (seed 0, so every run and seed
   holds out the same tasks), leave the training set and become the *selection split*. The test split that the
   run reports (`val/...`, the held-out table) is never used to select.
2. Every `freq` steps and at the last step, the loop plays the selection split greedily (`select/...` metrics) and
   offers the score (accuracy: the share of episodes rewarded) to `Best.offer`. Before the last step, a score at least
   as good as the best so far wins (ties go to the later, more trained weights), and the loop saves that step's
   weights (verl's checkpoint) to `<output_dir>/checkpoints/best`, with `selection.json` saying which step it holds.
3. At the last step, when an earlier step scored strictly higher, the loop loads that checkpoint into verl's actor,
   pushes its weights to the replicas, and the final test validation and the final checkpoint are of those weights
   (`select/restored_step`).

    python examples/calc_x/train_calc_agent.py agentlightning.selection.holdout=40 agentlightning.selection.freq=2
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

__all__ = ["BEST_DIR", "Best", "CheckpointPolicy", "carve", "keep_or_restore"]

logger = logging.getLogger(__name__)

BEST_DIR = "best"  # under <output_dir>/checkpoints; not a global_step_N folder, so a resume never starts from it
_STATE = "selection.json"


def carve(train: list[Any], holdout: int, batch_size: int) -> tuple[list[Any], list[Any]]:
    """(the training tasks left, the selection split): `train` itself when `holdout` is 0, else `holdout` tasks drawn
    by a permutation seeded 0, the rest in their order. Raises ValueError naming the counts when fewer than
    `batch_size` training tasks would remain."""
    if holdout <= 0:
        return train, []
    if len(train) - holdout < batch_size:
        raise ValueError(f"agentlightning.selection.holdout={holdout} of {len(train)} training tasks leaves "
                         f"{len(train) - holdout}, fewer than data.train_batch_size={batch_size}. Fix: a smaller "
                         f"holdout (e.g. {max(0, len(train) // 6)}), or 0 for no selection")
    held = set(np.random.default_rng(0).permutation(len(train))[:holdout].tolist())
    return [t for i, t in enumerate(train) if i not in held], [t for i, t in enumerate(train) if i in held]


class CheckpointPolicy(Protocol):
    """What selection needs of the policy (`RayPPOPolicy`): verl's checkpoint save/load and the weight push."""

    def save_checkpoint(self, folder: Path, step: int, max_to_keep: int | None = None) -> None: ...

    def load_checkpoint(self, folder: Path) -> None: ...

    def push_weights(self, step: int) -> dict[str, float]: ...


@dataclass
class Best:
    """The best selection score so far and the step whose weights `folder` holds (-1: none saved yet)."""

    folder: Path
    run: str
    step: int = -1
    score: float = float("-inf")

    @classmethod
    def load(cls, folder: Path, run: str) -> Best:
        """The record run `run` (a resumed one) left in `folder`, else an empty one (another run's is ignored)."""
        path = Path(folder) / _STATE
        data = json.loads(path.read_text()) if path.is_file() else {}
        if data.get("run") != run:
            return cls(Path(folder), run)
        return cls(Path(folder), run, int(data["step"]), float(data["score"]))

    def offer(self, score: float) -> bool:
        """True when weights that scored `score` are to be kept: at least the best so far (the later step wins ties)."""
        return score >= self.score

    def save(self, policy: CheckpointPolicy, step: int, score: float) -> None:
        """Replace the kept checkpoint with `step`'s weights (verl's checkpoint, outside its rotation) and record it."""
        if self.folder.exists():
            shutil.rmtree(self.folder)
        policy.save_checkpoint(self.folder, step, max_to_keep=None)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.kept(step, score)

    def kept(self, step: int, score: float) -> None:
        """Record that `folder` now holds `step`'s weights (written after the checkpoint, so it marks a complete one)."""
        self.step, self.score = step, score
        (self.folder / _STATE).write_text(json.dumps({"step": step, "score": score, "run": self.run}))

    def to_restore(self, last_score: float) -> int | None:
        """The step to restore after the last step scored `last_score`: the kept one when it scored strictly higher
        (the last step's own weights are the final checkpoint, so they are never copied here), else None."""
        return self.step if self.step >= 0 and self.score > last_score else None


async def keep_or_restore(scores: dict[str, float], policy: CheckpointPolicy, best: Best, step: int,
                          total: int) -> dict[str, float]:
    """This step's `select/...` metrics → before the last step, keep its weights when `select/accuracy` is at least
    the best so far; at the last step, restore the kept ones (load into verl's actor, push to the replicas) when they
    scored strictly higher. Returns the metrics with `select/best_step` (and `select/restored_step`,
    `timing_s/select_checkpoint` when that happened)."""
    out, score = dict(scores), scores["select/accuracy"]
    if step < total and best.offer(score):
        started = time.perf_counter()
        await asyncio.to_thread(best.save, policy, step, score)
        out["timing_s/select_checkpoint"] = time.perf_counter() - started
    elif step == total and (restore := best.to_restore(score)) is not None:
        logger.info("selection: step %d's weights scored %.3f on the selection split, the last step's %.3f: "
                    "restoring them for the final validation and checkpoint", restore, best.score, score)
        await asyncio.to_thread(policy.load_checkpoint, best.folder)
        await asyncio.to_thread(policy.push_weights, step)
        out["select/restored_step"] = float(restore)
    out["select/best_step"] = float(step if best.offer(score) else best.step)
    return out
