"""The GPU path end to end (marker `gpu`, skipped without CUDA): `VerlAlgorithm.fit` with the `gpu` preset builds
verl's `RayPPOTrainer` (`RayPPOPolicy`: FSDP worker groups on Ray, vLLM rollout replicas, checkpoint engine), the
agent's calls go through our proxy to verl's replicas, one GRPO step runs, the new weights are synced, a checkpoint
is written. The default model stands in for Qwen2.5-1.5B so no model hub is needed. Needs the GPU install profile
(`verl[vllm]`, README "Install profiles")."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import pytest

from agentlightning.trainer import Trainer

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

TASKS = [{"id": f"add-{a}-{b}", "a": a, "b": b} for a, b in [(1, 2), (2, 2), (3, 1), (4, 4)]]


def test_gpu_preset_fit_one_step_on_verls_ray_trainer(tmp_path: Path, model_path: str, add_agent: Any) -> None:
    try:
        importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the GPU build of vllm is not installed. Fix: the GPU install profile (pip install 'verl[vllm]')")
    from agentlightning.verl import VerlAlgorithm
    from agentlightning.verl.config import compose_config

    cfg = compose_config("agentlightning", [
        "preset=gpu", f"actor_rollout_ref.model.path={model_path}", f"agentlightning.output_dir={tmp_path}",
        "agentlightning.n_runners=0", "agentlightning.runner_backend=process", "trainer.total_training_steps=1",
        "trainer.save_freq=1", "data.train_batch_size=2", "actor_rollout_ref.actor.ppo_mini_batch_size=2",
        "actor_rollout_ref.rollout.n=2", "data.max_prompt_length=256", "data.max_response_length=32",
        "actor_rollout_ref.rollout.gpu_memory_utilization=0.3", "trainer.val_before_train=false"])
    history = Trainer(n_runners=0, algorithm=VerlAlgorithm(cfg)).fit(add_agent, TASKS, None)
    step = history[0]
    assert step["rollout/count"] == 4 and step["batch/num_samples"] >= 2 and step["actor/grad_norm"] > 0
    assert step["timing_s/weight_sync"] > 0
    assert json.loads((tmp_path / "checkpoints" / "global_step_1" / "agl_state.json").read_text())["step"] == 1
