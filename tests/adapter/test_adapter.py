"""TraceAdapter: spans of one attempt → triplets (ordering, rewards, duplicates, agents, masks, logprobs).

Spans are built by hand, shaped like the proxy's `llm.call` spans (`agentlightning/proxy/recording.py`) and the
tracer's reward / `LLM_REQUEST` spans. The trajectory tests use the real SmolLM2 tokenizer when the default model is
prepared (`AGL_HOME=/tmp/aglhome`), so the prefix property of its chat template is checked, not assumed.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from agentlightning import semconv
from agentlightning.adapter import AdapterResult, TraceAdapter
from agentlightning.store import InMemoryLightningStore
from agentlightning.types import Span

RID, AID = "ro-1", "at-1"
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
USER = {"role": "user", "content": "What is 2+3? Use the calculator."}


# ---------------------------------------------------------------------------------------------------------- builders
def call(seq: int, prompt: list[int] | None, response: list[int] | None, *, status: str = "ok",
         logprobs: list[float] | None = None, agent: str | None = None, messages: list[dict[str, Any]] | None = None,
         span_id: str | None = None) -> Span:
    attrs: dict[str, Any] = {"endpoint": "chat.completions", "request": {"messages": messages or [USER]},
                             "prompt_token_ids": prompt, "response_token_ids": response}
    if logprobs is not None:
        attrs["logprobs"] = logprobs
    if agent is not None:
        attrs[semconv.AGENT_NAME] = agent
    if status == "error":
        attrs = {"request": attrs["request"], "error": "upstream 500"}
    return Span(rollout_id=RID, attempt_id=AID, sequence_id=seq, span_id=span_id or f"call-{seq}",
                name=semconv.LLM_CALL, attributes=attrs, status=status)  # type: ignore[arg-type]


def reward(seq: int, value: float | None = None, **attrs: Any) -> Span:
    attributes = {"reward": value, **attrs} if value is not None else attrs
    return Span(rollout_id=RID, attempt_id=AID, sequence_id=seq, span_id=f"reward-{seq}", name=semconv.REWARD,
                attributes=attributes)


def request(seq: int, agent: str, messages: list[Any]) -> Span:
    attrs = {semconv.AGENT_NAME: agent, semconv.MESSAGES_DIGEST: semconv.messages_digest(messages)}
    return Span(rollout_id=RID, attempt_id=AID, sequence_id=seq, span_id=f"req-{seq}", name=semconv.LLM_REQUEST,
                attributes=attrs)


def other(seq: int) -> Span:
    return Span(rollout_id=RID, attempt_id=AID, sequence_id=seq, span_id=f"tool-{seq}", name="tool.calc")


# ---------------------------------------------------------------------------------------------------------- config
def test_bad_mode_and_bad_regex_raise_with_the_fix() -> None:
    with pytest.raises(ValueError, match="'episode'.*transition"):
        TraceAdapter(mode="episode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'wri\(ter'.*regular expression"):
        TraceAdapter(agent_match="wri(ter")


# ---------------------------------------------------------------------------------------------------------- transition
def test_transition_orders_by_sequence_id_and_keeps_ids() -> None:
    spans = [call(5, [1, 2, 3, 4, 5], [6, 2]), other(2), call(1, [1, 2], [3, 2])]  # out of order on purpose
    result = TraceAdapter().adapt(spans, data_id="d7")
    assert [t.prompt_token_ids for t in result.triplets] == [[1, 2], [1, 2, 3, 4, 5]]
    assert [t.response_token_ids for t in result.triplets] == [[3, 2], [6, 2]]
    assert [t.response_mask for t in result.triplets] == [[1, 1], [1, 1]]
    first, second = (t.metadata for t in result.triplets)
    assert first == {"rollout_id": RID, "attempt_id": AID, "data_id": "d7", "turn_index": 0, "agent_name": None,
                     "sequence_ids": [1], "final_reward": None}
    assert second["turn_index"] == 1 and second["sequence_ids"] == [5]
    assert result.stats["num_llm_calls"] == 2 and result.empty_reason is None and result.problems == []


def test_reward_goes_to_latest_earlier_call_and_rewards_are_summed() -> None:
    spans = [reward(1, 9.0), call(2, [1], [2]), reward(3, 0.5), call(4, [1, 2, 3], [4]), reward(5, 1.0),
             reward(6, 0.25), call(7, [5], [6])]
    result = TraceAdapter().adapt(spans)
    assert [t.reward for t in result.triplets] == [0.5, 1.25, None]
    assert result.final_reward == 0.25
    assert all(t.metadata["final_reward"] == 0.25 for t in result.triplets)
    assert result.stats["rewards_before_any_call"] == 1
    assert any("before any trainable" in p for p in result.problems)


def test_reward_dict_uses_primary_key_and_missing_key_is_a_problem() -> None:
    spans = [call(1, [1], [2]), reward(2, rewards={"exec": 1.0, "format": 0.5}, primary_key="exec"),
             reward(3, rewards={"exec": 1.0}, primary_key="nope")]
    result = TraceAdapter().adapt(spans)
    assert result.triplets[0].reward == 1.0 and result.final_reward == 1.0
    assert any("'nope'" in p for p in result.problems)


def test_duplicate_spans_are_dropped_and_counted() -> None:
    spans = [call(1, [1], [2]), call(1, [1], [2]), call(3, [1], [2], span_id="call-1"), reward(2, 1.0),
             reward(2, 1.0)]
    result = TraceAdapter().adapt(spans)
    assert len(result.triplets) == 1 and result.triplets[0].reward == 1.0
    assert result.stats["duplicates_dropped"] == 3 and result.stats["num_llm_calls"] == 1


def test_error_and_id_less_calls_are_counted_not_trained() -> None:
    spans = [call(1, [1], [2]), call(2, None, None, status="error"), reward(3, 1.0), call(4, None, None),
             call(5, [1], [])]
    result = TraceAdapter().adapt(spans)
    assert len(result.triplets) == 1 and result.triplets[0].reward == 1.0  # reward skips the failed call
    assert result.stats["num_llm_calls"] == 4
    assert result.stats["num_error_calls"] == 1 and result.stats["num_without_token_ids"] == 2


# ---------------------------------------------------------------------------------------------------------- empty
@pytest.mark.parametrize(
    ("spans", "adapter", "expected"),
    [
        ([other(1), reward(2, 1.0)], TraceAdapter(), "no llm.call spans"),
        ([call(1, None, None), call(2, None, None), call(3, None, None)], TraceAdapter(),
         "3 llm.call spans but none has token IDs (was return_token_ids forced? is the agent calling the proxy URL?)"),
        ([call(1, None, None, status="error")], TraceAdapter(), "1 llm.call spans but all failed"),
        ([call(1, [1], [2], agent="check"), call(2, [1], [2], agent="rewrite")], TraceAdapter(agent_match="writer"),
         "agent_match 'writer' matched none of the agents ['check', 'rewrite']"),
    ],
)
def test_empty_reason_and_warning(spans: list[Span], adapter: TraceAdapter, expected: str,
                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agentlightning.adapter"):
        result = adapter.adapt(spans)
    assert result.triplets == [] and result.empty_reason is not None
    assert result.empty_reason.startswith(expected)
    assert any(RID in r.getMessage() and expected in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


def test_no_spans_at_all_uses_the_given_rollout_id(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agentlightning.adapter"):
        result = TraceAdapter().adapt([], rollout_id="ro-empty")
    assert result.empty_reason is not None and "no llm.call spans" in result.empty_reason
    assert "ro-empty" in caplog.text


def test_spans_of_several_attempts_are_refused() -> None:
    spans = [call(1, [1], [2]), call(1, [1], [2]).model_copy(update={"attempt_id": "at-2", "span_id": "x"})]
    with pytest.raises(ValueError, match="2 attempts"):
        TraceAdapter().adapt(spans)


# ---------------------------------------------------------------------------------------------------------- agents
def test_agent_match_with_direct_agent_name() -> None:
    spans = [call(1, [1], [2], agent="write"), reward(2, 1.0), call(3, [3], [4], agent="check"), reward(4, 2.0),
             call(5, [5], [6], agent="rewrite"), call(6, [7], [8])]
    result = TraceAdapter(agent_match="write").adapt(spans)  # re.search: 'write' and 'rewrite'
    assert [t.metadata["agent_name"] for t in result.triplets] == ["write", "rewrite"]
    # the reward after the filtered 'check' call goes to the latest *matched* call
    assert [t.reward for t in result.triplets] == [3.0, None]
    assert result.stats["num_filtered_by_agent_match"] == 2  # 'check' and the unknown-agent call


def test_agent_match_through_llm_request_digest_of_langchain_messages() -> None:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    q = "Translate to SQL: how many users?"
    lc_write = [SystemMessage(content="You write SQL."), HumanMessage(content=q)]
    lc_check = [SystemMessage(content="You write SQL."), HumanMessage(content=q), AIMessage(content="SELECT 1"),
                HumanMessage(content="Check it.")]
    oa_write = [{"role": "system", "content": "You write SQL."}, {"role": "user", "content": q}]
    oa_check = oa_write + [{"role": "assistant", "content": "SELECT 1"}, {"role": "user", "content": "Check it."}]
    spans = [request(1, "write", lc_write), call(2, [1], [2], messages=oa_write),
             request(3, "check", lc_check), call(4, [3], [4], messages=oa_check),
             request(5, "write", lc_write), call(6, [5], [6], messages=oa_write),  # same digest: 2nd request used
             call(7, [7], [8], messages=[{"role": "user", "content": "nobody asked"}])]
    result = TraceAdapter().adapt(spans)
    assert [t.metadata["agent_name"] for t in result.triplets] == ["write", "check", "write", None]
    matched = TraceAdapter(agent_match="^check$").adapt(spans)
    assert [t.metadata["sequence_ids"] for t in matched.triplets] == [[4]]
    assert matched.stats["num_filtered_by_agent_match"] == 3


def test_retry_after_failed_call_still_gets_the_agent() -> None:
    spans = [request(1, "write", [USER]), call(2, None, None, status="error"), call(3, [1], [2])]
    result = TraceAdapter(agent_match="write").adapt(spans)
    assert [t.metadata["agent_name"] for t in result.triplets] == ["write"]


# ---------------------------------------------------------------------------------------------------------- logprobs
def test_logprobs_kept_when_they_fit_else_dropped_with_a_problem() -> None:
    spans = [call(1, [1], [2, 3], logprobs=[-0.1, -0.2]), call(2, [1], [2, 3], logprobs=[-0.1]), call(3, [1], [2])]
    result = TraceAdapter().adapt(spans)
    assert [t.logprobs for t in result.triplets] == [[-0.1, -0.2], None, None]
    assert len(result.problems) == 1 and "seq=2" in result.problems[0]


# ---------------------------------------------------------------------------------------------------------- trajectory
def test_trajectory_merges_synthetic_turns_with_masks_logprobs_and_reward_sum() -> None:
    p0, r0 = [1, 10, 11], [20, 2]
    p1 = p0 + r0 + [30, 31]
    r1 = [21, 2]
    p2 = p1 + r1 + [32]
    r2 = [22, 23, 2]
    spans = [call(1, p0, r0, logprobs=[-1.0, -2.0]), reward(2, 0.5), call(3, p1, r1, logprobs=[-3.0, -4.0]),
             call(4, p2, r2, logprobs=[-5.0, -6.0, -7.0]), reward(5, 1.0)]
    result = TraceAdapter(mode="trajectory").adapt(spans)
    (t,) = result.triplets
    assert t.prompt_token_ids == p0
    assert t.response_token_ids == [20, 2, 30, 31, 21, 2, 32, 22, 23, 2]
    assert t.response_mask == [1, 1, 0, 0, 1, 1, 0, 1, 1, 1]
    assert t.logprobs == [-1.0, -2.0, 0.0, 0.0, -3.0, -4.0, 0.0, -5.0, -6.0, -7.0]
    assert t.reward == 1.5 and t.metadata["sequence_ids"] == [1, 3, 4] and result.stats["merge_failures"] == 0


def test_trajectory_logprobs_none_if_any_call_lacks_them() -> None:
    spans = [call(1, [1], [2], logprobs=[-1.0]), call(2, [1, 2, 3], [4])]
    (t,) = TraceAdapter(mode="trajectory").adapt(spans).triplets
    assert t.logprobs is None and t.response_mask == [1, 0, 1] and t.reward is None


def test_trajectory_does_not_merge_across_agents_and_counts_no_failure() -> None:
    spans = [call(1, [1], [2], agent="a"), call(2, [1, 2, 3], [4], agent="b")]
    result = TraceAdapter(mode="trajectory").adapt(spans)
    assert len(result.triplets) == 2 and result.stats["merge_failures"] == 0


def test_trajectory_merge_failure_falls_back_to_separate_samples(caplog: pytest.LogCaptureFixture) -> None:
    spans = [call(1, [1, 10], [20, 2]), reward(2, 1.0), call(3, [1, 10, 20, 99, 30], [21, 2]), reward(4, 2.0)]
    with caplog.at_level(logging.INFO, logger="agentlightning.adapter"):
        result = TraceAdapter(mode="trajectory").adapt(spans)
    assert [t.response_mask for t in result.triplets] == [[1, 1], [1, 1]]
    assert [t.reward for t in result.triplets] == [1.0, 2.0]
    assert result.stats["merge_failures"] == 1
    assert any(RID in r.getMessage() and "token 3" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)
    assert "at token 3 of 4 (expected id 2, got 99)" in result.problems[0]  # the first mismatching token itself


# ---------------------------------------------------------------------------------------------------------- SmolLM2
@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from agentlightning import models

    if not models.is_prepared():
        pytest.skip(f"default model not prepared at {models.default_model_path()} (set AGL_HOME or run "
                    "`agl model prepare`)")
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(models.default_model_path()))


def _template(tok: Any, messages: list[dict[str, str]]) -> list[int]:
    out = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)  # transformers 5 returns a BatchEncoding


def _two_turns(tok: Any, role: str, answer: str) -> tuple[list[int], list[int], list[int], list[int]]:
    p0 = _template(tok, [SYSTEM, USER])
    r0 = tok.encode(answer, add_special_tokens=False) + [tok.eos_token_id]  # vLLM includes EOS (<|im_end|> = 2)
    p1 = _template(tok, [SYSTEM, USER, {"role": "assistant", "content": answer}, {"role": role, "content": "5"}])
    r1 = tok.encode("The answer is 5.", add_special_tokens=False) + [tok.eos_token_id]
    return p0, r0, p1, r1


@pytest.mark.parametrize("role", ["tool", "user"])
def test_trajectory_smollm2_template_keeps_prefix_and_masks_exactly(tokenizer: Any, role: str) -> None:
    p0, r0, p1, r1 = _two_turns(tokenizer, role, "calc(2+3)")
    assert tokenizer.eos_token_id == 2 and p1[: len(p0) + len(r0)] == p0 + r0  # the prefix property holds
    observation = p1[len(p0) + len(r0):]
    assert tokenizer.decode(observation) == f"\n<|im_start|>{role}\n5<|im_end|>\n<|im_start|>assistant\n"
    lp0, lp1 = [-0.5] * len(r0), [-0.25] * len(r1)
    spans = [call(1, p0, r0, logprobs=lp0), call(2, p1, r1, logprobs=lp1), reward(3, 1.0)]
    result = TraceAdapter(mode="trajectory").adapt(spans)
    (t,) = result.triplets
    assert t.prompt_token_ids == p0 and t.response_token_ids == r0 + observation + r1
    assert t.response_mask == [1] * len(r0) + [0] * len(observation) + [1] * len(r1)
    assert t.logprobs == lp0 + [0.0] * len(observation) + lp1
    assert p0 + t.response_token_ids == p1 + r1 and t.reward == 1.0 and result.stats["merge_failures"] == 0


def test_trajectory_smollm2_perturbed_prompt_falls_back(tokenizer: Any) -> None:
    p0, r0, p1, r1 = _two_turns(tokenizer, "tool", "calc(2+3)")
    perturbed = list(p1)
    perturbed[len(p0) + 1] += 1  # a re-tokenized / edited history token inside the first answer
    result = TraceAdapter(mode="trajectory").adapt([call(1, p0, r0), call(2, perturbed, r1)])
    assert len(result.triplets) == 2 and result.stats["merge_failures"] == 1
    assert [t.response_mask for t in result.triplets] == [[1] * len(r0), [1] * len(r1)]
    assert f"token {len(p0) + 1} of" in result.problems[0]


def test_trajectory_smollm2_non_canonical_sampled_tokens_break_the_prefix(tokenizer: Any) -> None:
    """The model may sample a token split that re-tokenizing its text does not reproduce ('ca'+'lc' vs 'calc')."""
    p0, r0, p1, r1 = _two_turns(tokenizer, "tool", "calc(2+3)")
    sampled = tokenizer.convert_tokens_to_ids(["ca", "lc"]) + r0[1:]
    assert tokenizer.decode(sampled, skip_special_tokens=True) == "calc(2+3)" and sampled != r0
    result = TraceAdapter(mode="trajectory").adapt([call(1, p0, sampled), call(2, p1, r1)])
    assert len(result.triplets) == 2 and result.stats["merge_failures"] == 1
    assert f"token {len(p0)} of" in result.problems[0] and "previous response" in result.problems[0]


# ---------------------------------------------------------------------------------------------------------- store
async def test_adapt_attempt_reads_the_latest_attempt_from_the_store() -> None:
    store = InMemoryLightningStore()
    rollout = await store.enqueue_rollout(input={"q": 1})
    attempted = await store.dequeue_rollout()
    assert attempted is not None
    for span in [call(0, [1], [2]), reward(0, 1.0)]:
        await store.add_span(span.model_copy(update={"rollout_id": rollout.rollout_id, "sequence_id": None,
                                                     "attempt_id": attempted.attempt.attempt_id}))
    result = await TraceAdapter().adapt_attempt(store, rollout.rollout_id, data_id="d1")
    assert isinstance(result, AdapterResult) and len(result.triplets) == 1
    assert result.triplets[0].reward == 1.0 and result.final_reward == 1.0
    assert result.triplets[0].metadata["rollout_id"] == rollout.rollout_id
    assert result.triplets[0].metadata["data_id"] == "d1"
    await store.close()
