"""GPU smoke test of the `gpu` preset's wiring (skipped without CUDA): verl's FSDP2 engine with parameter and
optimizer offload, gradient checkpointing, flash-attention + remove-padding, one GRPO step on the default model
(swapped in for Qwen2.5-1.5B so no model hub is needed) changes the parameters."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from agentlightning.types import Triplet
from agentlightning.verl.batch import BatchConfig, RolloutSamples, build_batch

pytestmark = pytest.mark.gpu


def test_gpu_preset_one_grpo_step(model_path: str, tokenizer: Any) -> None:
    from agentlightning.verl.actor import InProcessPPO
    from agentlightning.verl.config import compose_config

    cfg = compose_config("agentlightning", ["preset=gpu", f"actor_rollout_ref.model.path={model_path}",
                                            "actor_rollout_ref.actor.optim.lr=1e-4"])
    assert cfg.actor_rollout_ref.actor.fsdp_config.param_offload and cfg.actor_rollout_ref.model.use_remove_padding
    actor = InProcessPPO(cfg)
    prompt = list(tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+2?"}],
                                                add_generation_prompt=True, tokenize=True, return_dict=False))
    rollouts = [RolloutSamples(f"r{i}", "t", [Triplet(prompt_token_ids=prompt, response_token_ids=tokenizer.encode(
        answer, add_special_tokens=False) + [tokenizer.eos_token_id])], reward)
        for i, (answer, reward) in enumerate([("4", 1.0), ("5", 0.0)])]
    batch = build_batch(rollouts, BatchConfig(512, 32, tokenizer.pad_token_id or 0)).data
    before = {k: v.full_tensor().detach().cpu().clone() for k, v in actor.engine.module.named_parameters()}
    metrics = actor.step(batch)
    assert metrics["actor/grad_norm"] > 0
    after = {k: v.full_tensor().detach().cpu() for k, v in actor.engine.module.named_parameters()}
    assert sum(not torch.equal(after[k], before[k]) for k in before) > 0.9 * len(before)
