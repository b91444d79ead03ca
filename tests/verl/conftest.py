"""Fixtures of the verl tests: the composed CPU config, the default model and its tokenizer, hand-made triplets, a
one-call agent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


def default_model_or_skip() -> str:
    from agentlightning.models import default_model_path, is_prepared

    path = default_model_path()
    if not is_prepared(path):
        pytest.skip(f"the default model is not prepared at {path}. Fix: `make setup` (or `agl model prepare`)")
    return str(path)


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model_or_skip())


@pytest.fixture(scope="session")
def model_path() -> str:
    return default_model_or_skip()


@pytest.fixture(scope="module")
def cpu_config() -> Iterator[Any]:
    default_model_or_skip()
    from agentlightning.verl.config import compose_config

    # temperature 1: the trainer's log-probs are then comparable with vLLM's prompt_logprobs (never temperature-scaled)
    yield compose_config("agentlightning", ["actor_rollout_ref.actor.optim.lr=1e-4", "trainer.save_freq=1",
                                            "actor_rollout_ref.rollout.temperature=1.0"])


@pytest.fixture(scope="session")
def answer_pair_batch(tokenizer: Any) -> Any:
    """A GRPO group of two hand-made samples: "What is 2+2?" answered "4" (reward 1) and "5" (reward 0)."""
    from agentlightning.types import Triplet
    from agentlightning.verl.batch import BatchConfig, RolloutSamples, build_batch

    prompt = list(tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+2?"}],
                                                add_generation_prompt=True, tokenize=True, return_dict=False))
    rollouts = [RolloutSamples(f"r{i}", "t", [Triplet(prompt_token_ids=prompt, response_token_ids=tokenizer.encode(
        answer, add_special_tokens=False) + [tokenizer.eos_token_id])], reward)
        for i, (answer, reward) in enumerate([("4", 1.0), ("5", 0.0)])]
    return lambda: build_batch(rollouts, BatchConfig(512, 32, tokenizer.pad_token_id or 0)).data


@pytest.fixture(scope="session")
def add_agent() -> Any:
    """A one-call agent over the proxy: "What is a+b?", reward 1 when the reply contains the sum."""
    from agentlightning.agent import rollout
    from agentlightning.types import LLM

    @rollout
    async def add(task: dict[str, Any], llm: LLM) -> float:
        import openai

        client = openai.AsyncOpenAI(base_url=llm.get_base_url(), api_key="none")
        reply = await client.chat.completions.create(
            model=llm.model, messages=[{"role": "user", "content": f"What is {task['a']}+{task['b']}? Answer briefly."}],
            **llm.sampling_parameters)
        from agentlightning.emitter import emit_metrics

        text = reply.choices[0].message.content or ""
        emit_metrics({"reply_chars": len(text)})  # reported per step as agent/reply_chars
        return 1.0 if str(task["a"] + task["b"]) in text else 0.0

    return add
