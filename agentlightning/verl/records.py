"""Step records: what each training step played and what the update actually saw, for `agl view` and post-mortems.

Where this sits: … spans → adapter → verl batch → **update → records** (`<output_dir>/steps/step_NNNNNN.json`).
The trainer writes one file per step after the update, from the same objects the update used, so the viewer shows
what was trained, not a recomputation:
- `rollouts`: every rollout the step played (or reused after a resume): task, group, status, failure cause,
  reward, turns, tokens, whether it reached the update and, if not, why (failed, no triplets and the adapter's
  reason, a GRPO group without reward variance, a group with an infra-failed member, a surplus group);
- `samples`: every row of the updated batch: its rollout and turn, the call spans it came from (`sequence_ids`),
  prompt and response token ids without padding, the response mask (1 = trained, 0 = tool/observation tokens),
  the sampler's log-probs, verl's per-token advantages, and where the reward was placed.
`read_step` / `step_numbers` read them back. Files are plain JSON (one step ≈ 100–400 KB for the calc_x demo).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["STEPS_DIR", "batch_samples", "mark_update", "read_step", "step_numbers", "write_step"]

STEPS_DIR = "steps"


def _path(output_dir: Path, step: int) -> Path:
    return output_dir / STEPS_DIR / f"step_{step:06d}.json"


def write_step(output_dir: Path, step: int, rollouts: list[dict[str, Any]], samples: list[dict[str, Any]]) -> Path:
    """Write step `step`'s record atomically (a reader never sees half a file); returns its path."""
    path = _path(output_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps({"step": step, "policy_version": step - 1, "rollouts": rollouts,
                                   "samples": samples}, separators=(",", ":")))
    os.replace(partial, path)
    return path


def step_numbers(output_dir: Path) -> list[int]:
    """The steps with a record, ascending."""
    folder = output_dir / STEPS_DIR
    if not folder.is_dir():
        return []
    return sorted(int(p.stem.removeprefix("step_")) for p in folder.glob("step_*.json") if p.stem[5:].isdigit())


def read_step(output_dir: Path, step: int) -> dict[str, Any] | None:
    path = _path(output_dir, step)
    return json.loads(path.read_text()) if path.is_file() else None


def batch_samples(batch: Any, sequence_ids: dict[tuple[str, int], list[int]]) -> list[dict[str, Any]]:
    """The rows of an updated verl `DataProto` (`PPOStep.last_batch`) as sample records. `sequence_ids` maps
    (rollout id, turn index) to the call spans of that triplet (the adapter's triplet metadata)."""
    tensors, extra = batch.batch, batch.non_tensor_batch
    prompts, responses, attention = tensors["prompts"], tensors["responses"], tensors["attention_mask"]
    width = prompts.shape[1]
    mask = tensors["response_mask"]
    advantages = tensors["advantages"] if "advantages" in tensors.keys() else None
    scores = tensors["token_level_scores"] if "token_level_scores" in tensors.keys() else None
    logprobs = next((tensors[k] for k in ("rollout_log_probs", "old_log_probs") if k in tensors.keys()), None)
    out = []
    for row in range(len(batch)):
        prompt_real = attention[row, :width].bool()
        response_real = attention[row, width:].bool()
        n = int(response_real.sum())
        rollout_id, turn = str(extra["agl_rollout_id"][row]), int(extra["agl_turn_index"][row])
        reward_at = n - 1 if scores is not None and n else None  # build_batch puts it on the last response token
        out.append({
            "rollout_id": rollout_id, "turn": turn, "group": str(extra["uid"][row]),
            "sequence_ids": sequence_ids.get((rollout_id, turn), []),
            "prompt_ids": prompts[row][prompt_real].tolist(),
            "response_ids": responses[row, :n].tolist(),
            "response_mask": mask[row, :n].int().tolist(),
            "logprobs": [round(float(v), 4) for v in logprobs[row, :n]] if logprobs is not None else None,
            "advantages": [round(float(v), 4) for v in advantages[row, :n]] if advantages is not None else None,
            "reward": float(scores[row, reward_at]) if reward_at is not None else None,
            "reward_index": reward_at,
        })
    return out


def mark_update(rollouts: list[dict[str, Any]], samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set each rollout record's `in_update` (it has a row in the updated batch) and, when not, `why_not`."""
    trained = {s["rollout_id"] for s in samples}
    by_group: dict[str, list[dict[str, Any]]] = {}
    for record in rollouts:
        by_group.setdefault(str(record["data_id"]), []).append(record)
    for record in rollouts:
        record["in_update"] = record["rollout_id"] in trained
        group = by_group[str(record["data_id"])]
        if record["in_update"]:
            record["why_not"] = None
        elif record["status"] != "succeeded" and record.get("cause") == "infra":
            record["why_not"] = "failed because of the infrastructure: its GRPO group is left out of the update"
        elif not record["turns"]:
            record["why_not"] = f"no samples: {record.get('empty_reason') or 'the adapter found no trainable calls'}"
        elif any(r["status"] != "succeeded" and r.get("cause") == "infra" for r in group):
            record["why_not"] = "a rollout of its GRPO group failed because of the infrastructure: group left out"
        elif len({r["reward"] for r in group}) == 1:
            record["why_not"] = "its GRPO group has no reward variance (advantage 0): filtered out"
        else:
            record["why_not"] = "left out: a surplus group, or to fit the mini-batches"
    return rollouts
