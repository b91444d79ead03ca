"""calc_agent against the real vLLM server on the default model (SmolLM2-135M-Instruct): the loop runs end to end.

It checks plumbing, not skill: every request is accepted (SmolLM2's template gets string content, the few-shot turns
and `Result:` messages render), replies are parsed, and each episode ends with a final answer or at max_turns. The
`vllm_server` session fixture comes from tests/conftest.py (hermes tool parser on).
"""

from __future__ import annotations

import pytest

from agentlightning.types import LLM
from examples.calc_x.calc_agent import calc_agent
from examples.calc_x.data import BUNDLED_TEST, load_calc_x
from examples.calc_x.tools import CalculatorTool

pytestmark = pytest.mark.vllm


async def test_agent_runs_on_real_vllm(vllm_server: object) -> None:
    llm = LLM(endpoint=vllm_server.base_url, model=vllm_server.model_name)  # type: ignore[attr-defined]
    tasks = load_calc_x(BUNDLED_TEST)[:2]
    async with CalculatorTool() as tool:
        for task in tasks:
            result = await calc_agent(task, llm, tool, max_turns=3, temperature=0.0, max_tokens=96)
            assert result.error is None, result.error
            assert 1 <= result.turns <= 3
            assert result.reward in (0.0, 1.0)
            assert result.format_ok or result.turns == 3  # ended by an answer, or ran out of turns
            assert all(isinstance(m["content"], str) for m in result.messages)
