"""The calc_x agent as the trainer sees it: `CalcXAgent` (one episode of `calc_agent` with the MCP calculator,
rewarded 1/0), built from the `calc_x:` config block by `make_agent`, and its tasks from the same block by
`calc_x_tasks`.

Where this sits: task → store → runner → **agent** → proxy → vLLM. `configs/calc_x.yaml` names these two:
`agentlightning.agent: examples.calc_x.agent:make_agent`, `agentlightning.tasks: examples.calc_x.agent:calc_x_tasks`,
`agentlightning.agent_config: calc_x`; `python -m agentlightning.verl --config-name calc_x` (or
`examples/calc_x/train_calc_agent.py`) trains it.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from omegaconf import DictConfig

from agentlightning import LitAgent, emit_metrics, emit_object
from agentlightning.agent import resolve_llm
from agentlightning.types import AttemptedRollout, NamedResources
from agentlightning.verl.config import data_path
from examples.calc_x.calc_agent import MAX_TURNS, calc_agent
from examples.calc_x.data import load_calc_x
from examples.calc_x.tools import CalculatorTool

__all__ = ["CalcXAgent", "calc_x_tasks", "make_agent"]

_TOOLS: dict[int, asyncio.Task[CalculatorTool]] = {}


async def _start_calculator() -> CalculatorTool:
    tool = CalculatorTool()
    await tool.__aenter__()
    return tool


async def _calculator() -> CalculatorTool:
    """One MCP calculator server per worker process and event loop (starting one costs ~1 s; episodes are short).
    Concurrent episodes share the one being started (a task, not a check-then-start, so they cannot race)."""
    key = id(asyncio.get_running_loop())
    starting = _TOOLS.get(key)
    if starting is None or (starting.done() and (starting.cancelled() or starting.exception() is not None)):
        _TOOLS[key] = asyncio.ensure_future(_start_calculator())
    return await asyncio.shield(_TOOLS[key])


class CalcXAgent(LitAgent):
    """The calc_x agent as a `LitAgent`: one episode of `calc_agent`, its outcome recorded as a `calc_result` object
    span and as metrics (`format_ok`, `used_tool`, `tool_calls`, `turns`, ...), its reward returned (1.0 correct,
    0.0 otherwise)."""

    def __init__(self, max_turns: int = MAX_TURNS) -> None:
        if max_turns < 1:
            raise ValueError(f"calc_x.max_turns={max_turns}: an episode needs at least one reply. Fix: "
                             f"calc_x.max_turns={MAX_TURNS}")
        self.max_turns = max_turns

    async def training_rollout(self, task: Any, resources: NamedResources, rollout: AttemptedRollout) -> float:
        result = await calc_agent(task, resolve_llm(resources, rollout), await _calculator(),
                                  max_turns=self.max_turns)
        emit_object({k: v for k, v in asdict(result).items() if k != "messages"}, name="calc_result")
        emit_metrics({"format_ok": result.format_ok, "used_tool": result.tool_calls > 0,
                      "tool_calls": result.tool_calls, "native_tool_calls": result.native_tool_calls,
                      "turns": result.turns, "episode_error": result.error is not None})
        return result.reward


def make_agent(block: DictConfig) -> CalcXAgent:
    """The agent with the `calc_x:` block's settings (`max_turns`)."""
    return CalcXAgent(max_turns=int(block.max_turns))


def calc_x_tasks(block: DictConfig, split: str) -> list[dict[str, Any]]:
    """The `calc_x:` block's tasks: `train_data` filtered to `train_difficulties` (null: all) for "train";
    `val_data`, its first `val_size` rows (null: all), for "val". Bad rows raise `CalcXDataError` naming them."""
    if split == "train":
        tasks = load_calc_x(data_path(block.train_data))
        if block.train_difficulties is not None:
            wanted, known = set(block.train_difficulties), {row.get("difficulty") for row in tasks}
            if not wanted <= known:
                raise ValueError(f"calc_x.train_difficulties={sorted(wanted)} names difficulties not in "
                                 f"{block.train_data} (it has {sorted(str(k) for k in known)}). Fix: pick from "
                                 "those, or null for every row")
            tasks = [row for row in tasks if row.get("difficulty") in wanted]
        return tasks
    if block.val_data is None:
        return []
    tasks = load_calc_x(data_path(block.val_data))
    return tasks if block.val_size is None else tasks[: int(block.val_size)]

