"""`calc_agent` against FakeChatServer, a scripted OpenAI-compatible chat endpoint (an httpx MockTransport)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from agentlightning.types import LLM
from examples.calc_x.calc_agent import FEW_SHOT, NUDGE, calc_agent, find_text_tool_calls
from examples.calc_x.tools import CalculatorTool

TASK = {"id": "t1", "question": "Tom has 3 apples and buys 4 more. How many apples does Tom have?", "result": "7"}
LLM_RESOURCE = LLM(endpoint="http://fake-chat.test/v1", model="policy", sampling_parameters={"top_k": 5})


class FakeChatServer:
    """A FAKE OpenAI chat server: answers each POST /v1/chat/completions with the next scripted reply.

    A reply is a string (assistant text) or a list of (name, arguments-json) native tool calls."""

    def __init__(self, replies: list[str | list[tuple[str, str]]]):
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/chat/completions"
        body = json.loads(request.content)
        self.requests.append(body)
        if not self.replies:
            return httpx.Response(500, json={"error": {"message": "script exhausted"}})
        reply = self.replies.pop(0)
        message: dict[str, Any] = {"role": "assistant", "content": reply if isinstance(reply, str) else None}
        if not isinstance(reply, str):
            message["tool_calls"] = [{"id": f"call_{i}", "type": "function",
                                      "function": {"name": name, "arguments": args}}
                                     for i, (name, args) in enumerate(reply)]
        return httpx.Response(200, json={
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "stop" if isinstance(reply, str) else "tool_calls"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })

    def client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=LLM_RESOURCE.endpoint, api_key="fake", max_retries=0,
                                  http_client=httpx.AsyncClient(transport=httpx.MockTransport(self.handle)))


@pytest.fixture
async def tool() -> AsyncIterator[CalculatorTool]:
    async with CalculatorTool.in_process() as calculator:
        yield calculator


async def test_native_tool_call_then_answer(tool: CalculatorTool) -> None:
    server = FakeChatServer([[("calculate", '{"expression": "3 + 4"}')], "It is 7.\n### ANSWER: 7 ###"])
    result = await calc_agent(TASK, LLM_RESOURCE, tool, client=server.client(), temperature=0.0)
    assert (result.reward, result.answer, result.format_ok, result.turns) == (1.0, "7", True, 2)
    assert (result.tool_calls, result.native_tool_calls, result.error) == (1, 1, None)
    first, second = server.requests
    assert first["tools"][0]["function"]["name"] == "calculate"
    assert first["temperature"] == 0.0 and first["top_k"] == 5  # non-OpenAI sampling params go in the body
    assert second["messages"][-2]["content"] == ""  # a string, never null: SmolLM2's template renders only content
    assert second["messages"][-2]["tool_calls"][0]["id"] == "call_0"
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_0", "content": "7"}


async def test_text_form_call_then_answer(tool: CalculatorTool) -> None:
    server = FakeChatServer(["calculate(3 + 4)", "### ANSWER: 7 ###"])
    result = await calc_agent(TASK, LLM_RESOURCE, tool, client=server.client())
    assert (result.reward, result.tool_calls, result.native_tool_calls, result.turns) == (1.0, 1, 0, 2)
    assert server.requests[1]["messages"][-1] == {"role": "user", "content": "Result: 7"}


async def test_hermes_text_call_and_tool_error_is_fed_back(tool: CalculatorTool) -> None:
    server = FakeChatServer(['<tool_call>{"name": "calculate", "arguments": {"expression": "3/0"}}</tool_call>',
                             "### ANSWER: 8 ###"])
    result = await calc_agent(TASK, LLM_RESOURCE, tool, client=server.client())
    assert (result.reward, result.format_ok, result.tool_calls) == (0.0, True, 1)
    assert server.requests[1]["messages"][-1]["content"].startswith("Result: error: calculate('3/0'): division")


async def test_few_shot_turns_come_before_the_question(tool: CalculatorTool) -> None:
    server = FakeChatServer(["### ANSWER: 7 ###", "### ANSWER: 7 ###"])
    await calc_agent(TASK, LLM_RESOURCE, tool, client=server.client())
    await calc_agent(TASK, LLM_RESOURCE, tool, client=server.client(), few_shot=False)
    with_examples, without = (r["messages"] for r in server.requests)
    assert [m["role"] for m in with_examples] == ["system"] + [m["role"] for m in FEW_SHOT] + ["user"]
    assert with_examples[-1]["content"] == f"Question: {TASK['question']}"
    assert [m["role"] for m in without] == ["system", "user"]


async def test_max_turns_without_answer(tool: CalculatorTool) -> None:
    server = FakeChatServer(["Let me think.", "calculate(3+4)", "Still thinking", "never reached"])
    result = await calc_agent(TASK, LLM_RESOURCE, tool, max_turns=3, client=server.client())
    assert (result.reward, result.answer, result.format_ok, result.turns, result.tool_calls) == (0.0, None, False, 3, 1)
    assert "max_turns=3" in result.reason
    assert server.requests[1]["messages"][-1] == {"role": "user", "content": NUDGE}
    assert len(server.requests) == 3


async def test_immediate_answer_and_llm_failure(tool: CalculatorTool) -> None:
    result = await calc_agent(TASK, LLM_RESOURCE, tool, client=FakeChatServer(["### ANSWER: 7 ###"]).client())
    assert (result.reward, result.turns, result.tool_calls) == (1.0, 1, 0)
    failed = await calc_agent(TASK, LLM_RESOURCE, tool, client=FakeChatServer([]).client())
    assert failed.reward == 0.0 and failed.error is not None and "LLM call failed" in failed.error


async def test_bad_arguments() -> None:
    async with CalculatorTool.in_process() as calculator:
        with pytest.raises(ValueError, match="max_turns=0 must be >= 1"):
            await calc_agent(TASK, LLM_RESOURCE, calculator, max_turns=0)
        with pytest.raises(KeyError, match="task has no 'result' field"):
            await calc_agent({"question": "q"}, LLM_RESOURCE, calculator)


@pytest.mark.parametrize(("text", "expressions"), [
    ("calculate(3 + 4)", ["3 + 4"]),
    ('I will use calculate("(3+4)*2") now', ["(3+4)*2"]),
    ("calculate(expression='5-2')\ncalculate(6/3)", ["5-2", "6/3"]),
    ('<tool_call>\n{"name": "calculate", "arguments": {"expression": "1+1"}}\n</tool_call>', ["1+1"]),
    ("calculate(3 + 4", []),
    ("no calls here", []),
])
def test_find_text_tool_calls(text: str, expressions: list[str]) -> None:
    assert [c.arguments["expression"] for c in find_text_tool_calls(text)] == expressions  # type: ignore[index]
