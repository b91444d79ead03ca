"""The calc_x agent: a tool-calling loop that solves one task with the calculator and is scored by `reward.score`.

What it really is: `openai.AsyncOpenAI` against `llm.get_base_url()` (vLLM directly, or the trainer's LLM proxy),
at most `max_turns` chat completions:

1. messages = [system prompt, `FEW_SHOT` example turns, the question]; every request also sends the OpenAI `tools`
   schema from the tool;
2. *native* tool calls in the reply (`message.tool_calls`, which vLLM fills only with `--enable-auto-tool-choice
   --tool-call-parser hermes` and a model that emits `<tool_call>` JSON) are run through `CalculatorTool` and sent back
   as `tool` messages;
3. otherwise the reply text is searched for a *text-form* call, parsed by our code: a line `calculate(3 + 4)` (also
   `calculate("3+4")`, `calculate(expression="3+4")`) or `<tool_call>{"name": "calculate", "arguments":
   {"expression": "3+4"}}</tool_call>`; results go back as a user message `Result: 7`;
4. the episode ends at the first reply containing `### ANSWER: <answer> ###` (scored), or after `max_turns` replies
   (reward 0, `format_ok` False).

Why the text form: the default policy, SmolLM2-135M-Instruct, has a chat template that renders neither `tools` nor
`tool_calls` (measured: the prompt has the same 43 tokens with and without `tools`), so the model never sees the
schema vLLM receives, and it was not trained on tool calls. The system prompt and two worked examples sent as earlier
chat turns (`FEW_SHOT`) teach the one-line `calculate(...)` form instead. Assistant messages always carry string
content ("" for a reply that was only native tool calls), since SmolLM2's template renders nothing else.
Measured behaviour of the default model: examples/calc_x/README.md.

    async with CalculatorTool() as tool:
        result = await calc_agent(task, llm, tool)    # CalcResult(reward=1.0, answer='7', format_ok=True, ...)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import openai

from agentlightning.clients import async_openai
from agentlightning.types import LLM
from examples.calc_x.reward import extract_answer, score
from examples.calc_x.tools import CalculatorTool

__all__ = ["FEW_SHOT", "MAX_TURNS", "NUDGE", "SYSTEM_PROMPT", "CalcResult", "ToolRequest", "calc_agent",
           "find_text_tool_calls"]

MAX_TURNS = 3  # model replies per episode: call the calculator, read the result, answer (configs/calc_x.yaml)

SYSTEM_PROMPT = """You solve math problems with a calculator.
To calculate, write one line: calculate(<expression>)
You will get the result. Then write the final answer like this: ### ANSWER: <number> ###"""

# Worked examples sent as earlier chat turns (few-shot): a 135M model copies demonstrated turns far more readily
# than instructions in the system prompt. Disjoint from the bundled data (no "Question: What is 2 + 5?" there).
FEW_SHOT: list[dict[str, str]] = [
    {"role": "user", "content": "Question: Sam has 2 pencils and buys 5 more. How many pencils does Sam have?"},
    {"role": "assistant", "content": "calculate(2 + 5)"},
    {"role": "user", "content": "Result: 7"},
    {"role": "assistant", "content": "### ANSWER: 7 ###"},
    {"role": "user", "content": "Question: What is 6 times 3?"},
    {"role": "assistant", "content": "calculate(6 * 3)"},
    {"role": "user", "content": "Result: 18"},
    {"role": "assistant", "content": "### ANSWER: 18 ###"},
]
NUDGE = "Reply with one line: calculate(...) or ### ANSWER: <number> ###"

_OPENAI_KWARGS = {"temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "presence_penalty",
                  "frequency_penalty", "logprobs", "top_logprobs", "n"}
_MAX_CALLS_PER_TURN = 4
_TOOL_CALL_TAG = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_CALL_START = re.compile(r"\bcalculate\s*\(")
_KEYWORD = re.compile(r"^\s*(?:expression|expr)\s*[:=]\s*")


@dataclass
class ToolRequest:
    """One tool call the model asked for: `arguments` is a dict or the raw JSON string; `native` says where it came
    from (OpenAI `tool_calls` vs. parsed from text); `call_id` is the OpenAI id for native calls."""

    name: str
    arguments: dict[str, Any] | str
    native: bool = False
    call_id: str | None = None
    text: str = ""


@dataclass
class CalcResult:
    """reward: 1.0/0.0 from `reward.score`. answer: the extracted answer (None without the marker). format_ok: the
    marker was present and non-empty. turns: chat completions made. tool_calls: tool calls run (native + text).
    error: why the episode failed outside the model's control (LLM unreachable, ...), else None."""

    reward: float
    answer: str | None
    format_ok: bool
    turns: int
    tool_calls: int
    error: str | None = None
    native_tool_calls: int = 0
    reason: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list, repr=False)


def _balanced(text: str, start: int) -> tuple[str, int] | None:
    """The text between `text[start-1] == '('` and its matching ')' (None when unbalanced)."""
    depth, i = 1, start
    while i < len(text):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return text[start:i], i + 1
        elif text[i] == "\n":
            return None
        i += 1
    return None


def _strip_argument(inner: str) -> str:
    inner = _KEYWORD.sub("", inner.strip()).strip()
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"`":
        inner = inner[1:-1].strip()
    return inner


def find_text_tool_calls(text: str) -> list[ToolRequest]:
    """Tool calls written in plain text, in order: `<tool_call>{json}</tool_call>` blocks, else `calculate(...)`."""
    calls: list[ToolRequest] = []
    for block in _TOOL_CALL_TAG.finditer(text or ""):
        try:
            payload = json.loads(block.group(1))
        except json.JSONDecodeError:
            calls.append(ToolRequest("calculate", block.group(1), text=block.group(0)))  # the tool explains the error
            continue
        if isinstance(payload, dict):
            arguments = payload.get("arguments", payload.get("parameters", {}))
            calls.append(ToolRequest(str(payload.get("name", "")), arguments, text=block.group(0)))
    if calls:
        return calls[:_MAX_CALLS_PER_TURN]
    for match in _CALL_START.finditer(text or ""):
        found = _balanced(text, match.end())
        if found is None:
            continue
        inner, end = found
        calls.append(ToolRequest("calculate", {"expression": _strip_argument(inner)}, text=text[match.start():end]))
        if len(calls) >= _MAX_CALLS_PER_TURN:
            break
    return calls


def _request_kwargs(llm: LLM, temperature: float | None, max_tokens: int) -> tuple[dict[str, Any], dict[str, Any]]:
    kwargs: dict[str, Any] = {"max_tokens": max_tokens}
    extra: dict[str, Any] = {}
    for key, value in llm.sampling_parameters.items():
        (kwargs if key in _OPENAI_KWARGS else extra)[key] = value
    if temperature is not None:
        kwargs["temperature"] = temperature
    return kwargs, extra


async def calc_agent(task: dict[str, Any], llm: LLM, tool: CalculatorTool, max_turns: int = MAX_TURNS,
                     temperature: float | None = None, *, max_tokens: int = 256,
                     client: openai.AsyncOpenAI | None = None, request_timeout: float = 120.0,
                     system_prompt: str = SYSTEM_PROMPT, few_shot: bool = True) -> CalcResult:
    """Solve `task` (`question` and `result` fields, as from `data.load_calc_x`) with `llm` and the calculator.

    temperature: None uses `llm.sampling_parameters` (or the server default). max_tokens: per reply, unless
    `llm.sampling_parameters` sets it. client: an AsyncOpenAI to reuse (tests pass one with a fake transport).
    few_shot: put the `FEW_SHOT` worked examples before the question (`CalcResult.messages` includes them).
    """
    if max_turns < 1:
        raise ValueError(f"max_turns={max_turns} must be >= 1 (one reply is needed to answer)")
    for key in ("question", "result"):
        if key not in task:
            raise KeyError(f"task has no {key!r} field (fields: {sorted(task)}); calc_agent needs 'question' and "
                           "'result', as rows from examples.calc_x.data.load_calc_x have")
    if client is None:  # per episode, on the runner's shared connection pool (agentlightning.clients)
        client = async_openai(llm, timeout=request_timeout, max_retries=0)
    kwargs, extra_body = _request_kwargs(llm, temperature, max_tokens)
    tools = tool.openai_tools()
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt},
                                      *([dict(m) for m in FEW_SHOT] if few_shot else []),
                                      {"role": "user", "content": f"Question: {task['question']}"}]
    turns = tool_calls = native_calls = 0
    while turns < max_turns:
        turns += 1
        try:
            response = await client.chat.completions.create(model=llm.model, messages=messages, tools=tools,
                                                            extra_body=extra_body or None, **kwargs)
        except openai.OpenAIError as exc:
            return CalcResult(0.0, None, False, turns, tool_calls, error=f"LLM call failed: "
                              f"{type(exc).__name__}: {str(exc)[:300]}", native_tool_calls=native_calls,
                              reason="LLM call failed", messages=messages)
        message = response.choices[0].message
        content = message.content or ""
        native = [ToolRequest(c.function.name, c.function.arguments, native=True, call_id=c.id)
                  for c in (message.tool_calls or []) if getattr(c, "function", None) is not None]
        if extract_answer(content) is not None and not native:
            messages.append({"role": "assistant", "content": content})
            result = score(content, task["result"])
            return CalcResult(result.reward, extract_answer(content), result.format_ok, turns, tool_calls,
                              native_tool_calls=native_calls, reason=result.reason, messages=messages)
        if native:
            messages.append({"role": "assistant", "content": content, "tool_calls": [
                {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in native]})
            for call in native[:_MAX_CALLS_PER_TURN]:
                output = await tool.call(call.name, call.arguments)
                messages.append({"role": "tool", "tool_call_id": call.call_id, "content": output})
            for call in native[_MAX_CALLS_PER_TURN:]:
                messages.append({"role": "tool", "tool_call_id": call.call_id,
                                 "content": f"error: at most {_MAX_CALLS_PER_TURN} tool calls per reply"})
            tool_calls += min(len(native), _MAX_CALLS_PER_TURN)
            native_calls += min(len(native), _MAX_CALLS_PER_TURN)
            continue
        messages.append({"role": "assistant", "content": content})
        text_calls = find_text_tool_calls(content)
        if not text_calls:
            messages.append({"role": "user", "content": NUDGE})
            continue
        lines = []
        for call in text_calls:
            output = await tool.call(call.name, call.arguments)
            lines.append(f"Result: {output}" if len(text_calls) == 1 else f"{call.text} -> Result: {output}")
        tool_calls += len(text_calls)
        messages.append({"role": "user", "content": "\n".join(lines)})
    return CalcResult(0.0, None, False, turns, tool_calls, native_tool_calls=native_calls,
                      reason=f"no final answer after max_turns={max_turns} replies", messages=messages)
