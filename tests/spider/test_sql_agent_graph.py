"""The SQL agent's LangGraph control flow with a scripted FAKE chat model (no server): node order, stop when the check
says correct, stop at max_turns, what the prompts show (truncated schema, visible SQL errors), scoring, and errors /
time-outs scoring 0 with the reason recorded."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from examples.spider.data.loader import bundled_root
from examples.spider.sql_agent import CORRECT_MARK, SQLAgent, build_graph, run_sql_agent, spider_tasks
from examples.spider.sql_tools import database_copy

GOLD = "SELECT Name FROM singer ORDER BY Age DESC"
TASK = {"id": "t0", "question": "Show the names of all singers ordered by age from the oldest to the youngest.",
        "query": GOLD, "db_id": "concert_singer", "db_dir": str(bundled_root() / "database")}


class ScriptedFakeChatModel(BaseChatModel):
    """A fake chat model: answers with `replies` in order, records every prompt; raises `fail_with` if set."""

    replies: list[str]
    prompts: list[str] = []
    sizes: list[int] = []
    fail_with: str | None = None

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self.prompts.append(str(messages[-1].content))
        self.sizes.append(len(messages))
        if self.fail_with:
            raise RuntimeError(self.fail_with)
        if not self.replies:
            raise AssertionError(f"the graph made more model calls than scripted ({len(self.prompts)})")
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.replies.pop(0)))])


def _fake(*replies: str) -> ScriptedFakeChatModel:
    return ScriptedFakeChatModel(replies=list(replies), prompts=[], sizes=[])


def sql(query: str) -> str:
    return f"Here is the query:\n```sql\n{query}\n```"


def test_stops_when_the_check_says_correct() -> None:
    model = _fake(sql(GOLD), f"{CORRECT_MARK}.")
    result = run_sql_agent(TASK, model, max_turns=3)
    assert (result.turns, len(model.prompts), result.checked_correct) == (1, 2, True)
    assert result.final_query == GOLD and result.reward == 1.0 and result.error is None
    assert "THE QUERY IS CORRECT" in model.prompts[1] and "Quentin" in model.prompts[1]  # check sees the rows


def test_stops_after_max_turns_and_scores_the_last_query() -> None:
    model = _fake(sql("SELECT Name FROM singer"), "Wrong order.", sql("SELECT Name FROM singer ORDER BY Age"),
                  "Should be descending.", sql(GOLD), "Still not sure.")
    result = run_sql_agent(TASK, model, max_turns=3)
    assert (result.turns, len(model.prompts), result.checked_correct) == (3, 6, False)
    assert result.queries == ["SELECT Name FROM singer", "SELECT Name FROM singer ORDER BY Age", GOLD]
    assert result.reward == 1.0  # execution match of the final query, whatever the check said
    assert "Should be descending." in model.prompts[4]  # the rewrite sees the check's feedback
    assert model.sizes == [5, 1, 5, 1, 5, 1]  # two worked examples (4 turns) before each write / rewrite prompt
    one = _fake(sql("SELECT Name FROM singer"), "no")
    result = run_sql_agent(TASK, one, max_turns=1, few_shot=False)
    assert (result.turns, len(one.prompts), result.reward, one.sizes) == (1, 2, 0.0, [1, 1])
    assert result.exec_reason is not None and "different result" in result.exec_reason


def test_node_order_and_names() -> None:
    model = _fake(sql("SELECT 1"), "no", sql(GOLD), CORRECT_MARK)
    graph = build_graph(model, database_copy(bundled_root() / "database/concert_singer/concert_singer.sqlite"), 3)
    steps = [next(iter(update)) for update in graph.stream({"question": "q", "table_info": "t"},
                                                            stream_mode="updates")]
    assert steps == ["write_query", "execute_query", "check_query", "rewrite_query", "execute_query", "check_query"]


def test_write_errors_are_shown_to_the_model_and_counted() -> None:
    model = _fake(sql("DROP TABLE singer"), "It deletes data.", "I cannot fix it.", "no")
    result = run_sql_agent(TASK, model, max_turns=2)
    assert "Error:" in model.prompts[1] and "read-only" in model.prompts[1]
    assert result.queries == ["DROP TABLE singer", "DROP TABLE singer"]  # a reply without SQL keeps the query
    assert result.query_errors == 2 and result.reward == 0.0 and result.error is None


def test_schema_and_execution_truncation_reach_the_prompts() -> None:
    model = _fake(sql("SELECT * FROM singer, concert"), CORRECT_MARK)
    run_sql_agent(TASK, model, table_info_truncate=150, execution_truncate=80)
    write, check = model.prompts
    assert "truncated" in write and "CREATE TABLE stadium" in write and "CREATE TABLE singer" not in write
    result_part = check.split("Result of running the query:\n", 1)[1].split("\n\nIf the query", 1)[0]
    assert len(result_part) < 130 and "truncated" in result_part


def test_model_errors_and_timeouts_score_zero_and_are_recorded() -> None:
    broken = ScriptedFakeChatModel(replies=[], prompts=[], fail_with="connection refused")
    result = run_sql_agent(TASK, broken)
    assert result.reward == 0.0 and "connection refused" in (result.error or "") and not result.timed_out
    result = run_sql_agent(TASK, _fake(sql(GOLD), CORRECT_MARK), rollout_timeout_s=0.0)
    assert result.reward == 0.0 and result.timed_out and "RolloutTimeoutError" in (result.error or "")


def test_tasks_and_config_errors_name_the_fix() -> None:
    tasks = spider_tasks("dev", bundled_root(), limit=3)
    assert len(tasks) == 3 and set(tasks[0]) == {"id", "question", "query", "db_id", "db_dir"}
    with pytest.raises(ValueError, match=r"lacks \['db_dir'\]"):
        run_sql_agent({k: v for k, v in TASK.items() if k != "db_dir"}, _fake())
    with pytest.raises(ValueError, match="max_turns>=1"):
        SQLAgent(max_turns=0)
