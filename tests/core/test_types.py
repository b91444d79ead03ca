"""Core types: LLM / ProxyLLM URLs, prompt templates, rollout config validation, triplets, resource round-trips."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentlightning.types import (
    LLM,
    Attempt,
    AttemptedRollout,
    PromptTemplate,
    ProxyLLM,
    ResourcesUpdate,
    RolloutConfig,
    Triplet,
)


def _attempted(rollout_id: str = "ro-1", attempt_id: str = "at-1") -> AttemptedRollout:
    return AttemptedRollout(rollout_id=rollout_id, input={}, attempt=Attempt(attempt_id=attempt_id,
                                                                               rollout_id=rollout_id, sequence_id=1))


def test_llm_base_url_and_validation() -> None:
    llm = LLM(endpoint="http://127.0.0.1:8000/v1", model="m", sampling_parameters={"temperature": 0.5})
    assert llm.get_base_url() == "http://127.0.0.1:8000/v1"
    with pytest.raises(ValidationError, match="must start with http"):
        LLM(endpoint="127.0.0.1:8000", model="m")


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9000", "http://127.0.0.1:9000/", "http://127.0.0.1:9000/v1",
                                      "http://127.0.0.1:9000/v1/"])
def test_proxy_llm_url_carries_rollout_and_attempt(endpoint: str) -> None:
    proxy = ProxyLLM(endpoint=endpoint, model="policy", api_key="k", sampling_parameters={"temperature": 1.0})
    expected = "http://127.0.0.1:9000/rollout/ro-1/attempt/at-1/v1"
    assert proxy.get_base_url("ro-1", "at-1") == expected
    bound = proxy.with_attempted_rollout(_attempted())
    assert type(bound) is LLM and bound.get_base_url() == expected
    assert (bound.model, bound.api_key, bound.sampling_parameters) == ("policy", "k", {"temperature": 1.0})
    with pytest.raises(ValueError, match="with_attempted_rollout"):
        proxy.get_base_url()


def test_prompt_templates() -> None:
    assert PromptTemplate(template="Q: {question}").format(question="2+2") == "Q: 2+2"
    jinja = PromptTemplate(template="{% for t in tables %}{{ t }};{% endfor %} {{ q }}", engine="jinja")
    assert jinja.format(tables=["a", "b"], q="?") == "a;b; ?"
    with pytest.raises(ValueError, match=r"needs variable 'question'.*\['q'\]"):
        PromptTemplate(template="Q: {question}").format(q="x")
    with pytest.raises(ValueError, match="'q' is undefined"):
        jinja.format(tables=[])
    with pytest.raises(ValidationError):
        PromptTemplate(template="x", engine="mustache")  # type: ignore[arg-type]


def test_rollout_config_rejects_bad_values_with_reasons() -> None:
    assert RolloutConfig().max_attempts == 1
    with pytest.raises(ValidationError, match="max_attempts=0 must be >= 1"):
        RolloutConfig(max_attempts=0)
    with pytest.raises(ValidationError, match="timeout_seconds=-1.0 must be > 0"):
        RolloutConfig(timeout_seconds=-1)
    with pytest.raises(ValidationError, match="not retryable"):
        RolloutConfig(retry_condition=["succeeded"])  # type: ignore[list-item]


def test_triplet_lengths_must_agree() -> None:
    Triplet(prompt_token_ids=[1, 2], response_token_ids=[3, 4], logprobs=[-0.1, -0.2], reward=1.0)
    with pytest.raises(ValidationError, match="logprobs has 1 entries but response_token_ids has 2"):
        Triplet(prompt_token_ids=[1], response_token_ids=[3, 4], logprobs=[-0.1])
    with pytest.raises(ValidationError, match="response_mask"):
        Triplet(prompt_token_ids=[1], response_token_ids=[3, 4], response_mask=[1])


def test_resources_round_trip_keeps_types() -> None:
    update = ResourcesUpdate(resources_id="rs-1", version=3, resources={
        "llm": ProxyLLM(endpoint="http://127.0.0.1:1/v1", model="p"),
        "plain": LLM(endpoint="http://127.0.0.1:2/v1", model="q"),
        "prompt": PromptTemplate(template="{x}", engine="f-string"),
    })
    back = ResourcesUpdate.model_validate_json(update.model_dump_json())
    assert isinstance(back.resources["llm"], ProxyLLM) and type(back.resources["plain"]) is LLM
    assert isinstance(back.resources["prompt"], PromptTemplate) and back == update


def test_top_level_exports() -> None:
    import agentlightning

    for name in agentlightning.__all__:
        assert hasattr(agentlightning, name), name
