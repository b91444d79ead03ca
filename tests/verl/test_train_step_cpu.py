"""A real GRPO step on CPU with the default model through verl's own worker, engine (FSDP2) and loss: the
parameters change, verl's metrics come back, the recomputed log-probs move toward the rewarded answer, and a verl
checkpoint round-trips. Gradient checkpointing is turned on here (the cpu preset leaves it off: RAM is plentiful for
135M parameters and recomputation costs compute) to show it works on CPU too."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from agentlightning.types import Triplet
from agentlightning.verl.batch import BatchConfig, RolloutSamples, build_batch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def actor(model_path: str) -> Any:
    from agentlightning.verl.actor import InProcessPPO
    from agentlightning.verl.config import compose_config

    return InProcessPPO(compose_config("agentlightning", [
        "actor_rollout_ref.actor.optim.lr=1e-4", "actor_rollout_ref.model.enable_gradient_checkpointing=true"]))


def chat_prompt(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                              tokenize=True, return_dict=False))


def _batch(tokenizer: Any) -> Any:
    rollouts = []
    for g, (question, good, bad) in enumerate([("What is 2+2?", "4", "5"), ("What is 3+3?", "6", "7")]):
        prompt = chat_prompt(tokenizer, question)
        for k, (answer, reward) in enumerate([(good, 1.0), (bad, 0.0)]):
            response = tokenizer.encode(answer, add_special_tokens=False) + [tokenizer.eos_token_id]
            rollouts.append(RolloutSamples(f"r{g}{k}", f"task{g}", [Triplet(prompt_token_ids=prompt,
                                                                            response_token_ids=response)], reward))
    return build_batch(rollouts, BatchConfig(512, 32, tokenizer.pad_token_id or 0)).data


def test_grpo_step_changes_parameters_and_reports_verl_metrics(actor: Any, tokenizer: Any) -> None:
    assert actor.config.actor_rollout_ref.model.enable_gradient_checkpointing
    assert actor.engine.module.is_gradient_checkpointing  # HF's flag: verl turned it on in the real module
    assert actor.engine.module.config._attn_implementation == "sdpa"
    before = {k: v.full_tensor().detach().clone() for k, v in actor.engine.module.named_parameters()}
    lp_before = actor.log_probs(_batch(tokenizer))
    metrics = actor.step(_batch(tokenizer))
    for key in ("actor/pg_loss", "actor/grad_norm", "actor/entropy", "critic/advantages/max",
                "response_length/mean", "timing_s/update_actor"):
        assert key in metrics, f"{key} missing from {sorted(metrics)}"
    assert metrics["actor/grad_norm"] > 0
    changed = [k for k, v in actor.engine.module.named_parameters() if not torch.equal(v.full_tensor(), before[k])]
    assert len(changed) > 0.9 * len(before)
    # What GRPO optimises is each response's sequence log-prob against its group's: the rewarded answers (rows 0, 2)
    # became more likely, and more likely than their group's unrewarded answer (rows 1, 3) than before. (Single
    # tokens can move against their row: Adam's first step is ~lr·sign(grad) on every parameter, and the shared EOS
    # token moved up for all rows — measured: "6" -7.73 -> -7.91 while "6<eos>" -10.60 -> -7.91.)
    seq_before, seq_after = lp_before.sum(-1), actor.log_probs(_batch(tokenizer)).sum(-1)
    assert (seq_after[[0, 2]] > seq_before[[0, 2]]).all(), (seq_before, seq_after)
    margin_before, margin_after = seq_before[[0, 2]] - seq_before[[1, 3]], seq_after[[0, 2]] - seq_after[[1, 3]]
    assert (margin_after > margin_before + 1.0).all(), (margin_before, margin_after)


def test_hf_state_dict_has_hf_names(actor: Any) -> None:
    names = dict(actor.hf_state_dict())
    assert "model.embed_tokens.weight" in names and "model.layers.0.self_attn.q_proj.weight" in names
    assert not any("_fsdp" in n or "_checkpoint_wrapped" in n for n in names)


def test_checkpoint_round_trip(actor: Any, tokenizer: Any, tmp_path: Any) -> None:
    actor.save_checkpoint(tmp_path, step=1)
    saved = actor.log_probs(_batch(tokenizer))
    actor.step(_batch(tokenizer))
    assert not torch.allclose(actor.log_probs(_batch(tokenizer)), saved)
    actor.load_checkpoint(tmp_path)
    assert torch.allclose(actor.log_probs(_batch(tokenizer)), saved, atol=1e-4)
