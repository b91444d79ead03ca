"""GPU smoke test of the `gpu` preset (skipped without CUDA): verl's RayPPOTrainer with FSDP2 parameter and optimizer
offload, gradient checkpointing, flash-attention + remove-padding; one GRPO step on the default model (swapped in for
Qwen2.5-1.5B so no model hub is needed) changes the weights the replica serves."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


def test_gpu_preset_one_grpo_step(model_path: str, answer_pair_batch: Any) -> None:
    from agentlightning.verl.config import compose_config
    from agentlightning.verl.ray_policy import RayPPOPolicy

    cfg = compose_config("agentlightning", ["preset=gpu", f"actor_rollout_ref.model.path={model_path}",
                                            "actor_rollout_ref.actor.optim.lr=1e-4",
                                            "actor_rollout_ref.rollout.gpu_memory_utilization=0.3"])
    assert cfg.actor_rollout_ref.actor.fsdp_config.param_offload and cfg.actor_rollout_ref.model.use_remove_padding
    policy = RayPPOPolicy(cfg, [{"id": "t"}] * 4)
    try:
        policy.start(0)
        before = policy.log_probs(answer_pair_batch())
        metrics = policy.step(answer_pair_batch())
        assert metrics["actor/grad_norm"] > 0
        assert not before.allclose(policy.log_probs(answer_pair_batch()))
        assert policy.push_weights(1)["total"] > 0
    finally:
        policy.close()
