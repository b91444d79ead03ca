"""ResponseLogitsEngine (agentlightning/verl/response_logits.py) against verl's own FSDPEngineWithLMHead: the same
log-probs, entropy and gradients at every position the PPO loss reads, with logits computed for fewer positions.

Both engines' `prepare_model_inputs` → model → `prepare_model_outputs` run on a small random Llama (no FSDP, no
Ray: the engines' data path only); the positions read are taken with verl's own `no_padding_2_padding`, which is
what `ppo_loss` uses.
"""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM
from verl.utils import tensordict_utils as tu
from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead
from verl.workers.utils.padding import no_padding_2_padding

from agentlightning.verl.response_logits import ResponseLogitsEngine, first_read_position

PROMPTS = [11, 7, 9]
RESPONSES = [4, 6, 3]


def _model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, attn_implementation="sdpa")
    return LlamaForCausalLM(config).float()


def _micro_batch(layout: str = "nested", **flags: object) -> tu.TensorDict:
    """A micro-batch as verl's engine receives it: nested prompt+response `input_ids`; `prompts`/`responses` nested,
    or (`layout="padded"`, how verl's trainer sends them) left-/right-padded with an `attention_mask`."""
    gen = torch.Generator().manual_seed(1)
    prompts = [torch.randint(1, 300, (n,), generator=gen) for n in PROMPTS]
    responses = [torch.randint(1, 300, (n,), generator=gen) for n in RESPONSES]
    seqs = [torch.cat([p, r]) for p, r in zip(prompts, responses, strict=True)]

    def nested(tensors: list[torch.Tensor]) -> torch.Tensor:
        return torch.nested.as_nested_tensor(tensors, layout=torch.jagged)

    tensors: dict[str, torch.Tensor] = {"input_ids": nested(seqs),
                                        "position_ids": nested([torch.arange(len(s)) for s in seqs])}
    if layout == "nested":
        tensors.update(prompts=nested(prompts), responses=nested(responses))
    else:
        width_p, width_r = max(PROMPTS), max(RESPONSES)
        tensors["prompts"] = torch.stack([F.pad(p, (width_p - len(p), 0)) for p in prompts])
        tensors["responses"] = torch.stack([F.pad(r, (0, width_r - len(r))) for r in responses])
        tensors["attention_mask"] = torch.stack([
            torch.cat([torch.arange(width_p) >= width_p - len(p), torch.arange(width_r) < len(r)]).long()
            for p, r in zip(prompts, responses, strict=True)])
    return tu.get_tensordict(tensors, non_tensor_dict={
        "temperature": 0.7, "use_remove_padding": False, "calculate_entropy": True, "pad_token_id": 0, **flags})


def _engine(cls: type) -> FSDPEngineWithLMHead:
    engine = cls.__new__(cls)  # the engines' data path only: no FSDP module, no process group
    engine.module = _model()
    engine.pad_to_length = None
    engine.use_ulysses_sp = False
    engine.ulysses_sequence_parallel_size = 1
    engine.engine_config = types.SimpleNamespace(entropy_checkpointing=False, entropy_from_logits_with_chunking=False)
    return engine


def _run(engine: FSDPEngineWithLMHead, data: tu.TensorDict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    inputs, args = engine.prepare_model_inputs(data)
    output = engine.module(**inputs, use_cache=False)
    out = engine.prepare_model_outputs(output, args, data, None)
    log_probs = no_padding_2_padding(out["log_probs"], data)  # (B, max response): what ppo_loss reads
    entropy = no_padding_2_padding(out["entropy"], data)
    weights = torch.linspace(-1.0, 1.0, log_probs.numel()).view_as(log_probs)
    (log_probs * weights).sum().add(entropy.sum()).backward()
    grads = torch.cat([p.grad.flatten() for p in engine.module.parameters()])
    return log_probs.detach(), entropy.detach(), grads, output.logits.shape[1]


@pytest.mark.parametrize("layout", ["nested", "padded"])
def test_same_log_probs_entropy_and_gradients_as_verls_engine_from_fewer_logits(layout: str) -> None:
    data = _micro_batch(layout)
    want_lp, want_ent, want_grad, verl_positions = _run(_engine(FSDPEngineWithLMHead), data)
    ours = _engine(ResponseLogitsEngine)
    got_lp, got_ent, got_grad, our_positions = _run(ours, data)
    assert ours.response_logits_micro_batches == 1
    longest = max(p + r for p, r in zip(PROMPTS, RESPONSES, strict=True))
    assert verl_positions == longest
    assert our_positions == longest - (min(PROMPTS) - 1)  # logits from the first position any loss reads
    mask = torch.arange(max(RESPONSES)) < torch.tensor(RESPONSES).unsqueeze(1)  # real response positions
    torch.testing.assert_close(got_lp[mask], want_lp[mask], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_ent[mask], want_ent[mask], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-4, atol=1e-6)
    assert want_grad.abs().sum() > 0


@pytest.mark.parametrize("flags", [{"use_remove_padding": True}, {"use_fused_kernels": True},
                                   {"calculate_sum_pi_squared": True}, {"distillation_use_topk": True}])
def test_paths_it_does_not_cover_go_to_verls_code(flags: dict[str, object]) -> None:
    assert first_read_position(_micro_batch(**flags)) is None


def test_a_batch_without_prompts_goes_to_verls_code() -> None:
    data = _micro_batch()
    del data["prompts"]
    assert first_read_position(data) is None
    assert first_read_position(_micro_batch("nested")) == first_read_position(_micro_batch("padded")) == min(PROMPTS) - 1


def test_the_cpu_platform_registers_it_for_the_language_model() -> None:
    from verl.workers.engine import EngineRegistry

    from agentlightning.verl import cpu_platform

    cpu_platform.install_hooks()
    assert EngineRegistry._engines["language_model"]["fsdp2"]["cpu"] is ResponseLogitsEngine
