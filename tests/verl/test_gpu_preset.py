"""GPU smoke test of the `gpu` preset's wiring (skipped without CUDA): verl's FSDP2 engine with parameter and
optimizer offload, gradient checkpointing, flash-attention + remove-padding, one GRPO step on the default model
(swapped in for Qwen2.5-1.5B so no model hub is needed) changes the parameters."""

from __future__ import annotations

from typing import Any

import pytest
import torch

pytestmark = pytest.mark.gpu


def test_gpu_preset_one_grpo_step(model_path: str, answer_pair_batch: Any) -> None:
    from agentlightning.verl.actor import InProcessPPO
    from agentlightning.verl.config import compose_config

    cfg = compose_config("agentlightning", ["preset=gpu", f"actor_rollout_ref.model.path={model_path}",
                                            "actor_rollout_ref.actor.optim.lr=1e-4"])
    assert cfg.actor_rollout_ref.actor.fsdp_config.param_offload and cfg.actor_rollout_ref.model.use_remove_padding
    actor = InProcessPPO(cfg)
    batch = answer_pair_batch()
    before = {k: v.full_tensor().detach().cpu().clone() for k, v in actor.engine.module.named_parameters()}
    metrics = actor.step(batch)
    assert metrics["actor/grad_norm"] > 0
    after = {k: v.full_tensor().detach().cpu() for k, v in actor.engine.module.named_parameters()}
    assert sum(not torch.equal(after[k], before[k]) for k in before) > 0.9 * len(before)
