"""Run the calc_x agent on test tasks and count what the model does: tool calls, formatted answers, correct answers.

What it really is: `calc_agent` over the first `--n` rows of a Calc-X file, `--concurrency` at a time, against either
a running OpenAI-compatible server (`--base-url`, `--model`) or a vLLM server it starts on the default model with the
tool-call flags (`--enable-auto-tool-choice --tool-call-parser hermes`). Prints one summary line per temperature and,
with `--show N`, the first N transcripts.

    AGL_HOME=/tmp/aglhome python -m examples.calc_x.evaluate --n 20 --temperatures 0 1.0
    python -m examples.calc_x.evaluate --base-url http://127.0.0.1:8000/v1 --model policy --n 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from agentlightning.models import DEFAULT_MAX_MODEL_LEN
from agentlightning.types import LLM
from examples.calc_x.calc_agent import CalcResult, calc_agent
from examples.calc_x.data import BUNDLED_TEST, load_calc_x
from examples.calc_x.tools import CalculatorTool

__all__ = ["TOOL_PARSER_ARGS", "evaluate", "main", "summarize"]

TOOL_PARSER_ARGS = ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]


def summarize(results: Sequence[CalcResult]) -> dict[str, Any]:
    """Counts over episodes: any tool call, any native tool call, formatted answer, correct answer, errors."""
    return {
        "n": len(results),
        "tool_call": sum(r.tool_calls > 0 for r in results),
        "native_tool_call": sum(r.native_tool_calls > 0 for r in results),
        "formatted": sum(r.format_ok for r in results),
        "correct": sum(r.reward == 1.0 for r in results),
        "errors": sum(r.error is not None for r in results),
        "mean_turns": round(sum(r.turns for r in results) / max(1, len(results)), 2),
    }


async def evaluate(tasks: Sequence[dict[str, Any]], llm: LLM, temperature: float | None, concurrency: int = 8,
                   max_turns: int = 4) -> list[CalcResult]:
    """`calc_agent` on every task (one calculator server shared by all), in task order."""
    gate = asyncio.Semaphore(concurrency)
    async with CalculatorTool() as tool:
        async def one(task: dict[str, Any]) -> CalcResult:
            async with gate:
                return await calc_agent(task, llm, tool, max_turns=max_turns, temperature=temperature)

        return list(await asyncio.gather(*(one(task) for task in tasks)))


@contextlib.contextmanager
def _endpoint(args: argparse.Namespace) -> Iterator[LLM]:
    if args.base_url:
        yield LLM(endpoint=args.base_url, model=args.model)
        return
    from agentlightning.models import default_model_path
    from agentlightning.serving import VLLMServer

    extra = ["--max-model-len", str(DEFAULT_MAX_MODEL_LEN), *TOOL_PARSER_ARGS]
    with VLLMServer(default_model_path(), served_model_name=args.model, extra_args=extra) as server:
        yield LLM(endpoint=server.base_url, model=server.model_name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=BUNDLED_TEST)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--base-url", default=None, help="a running server; default: start vLLM on the default model")
    parser.add_argument("--model", default="policy")
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--show", type=int, default=0, help="print this many transcripts per temperature")
    args = parser.parse_args(argv)
    tasks = load_calc_x(args.data)[: args.n]
    with _endpoint(args) as llm:
        for temperature in args.temperatures:
            results = asyncio.run(evaluate(tasks, llm, temperature, args.concurrency, args.max_turns))
            print(json.dumps({"temperature": temperature, **summarize(results)}), flush=True)
            for task, result in list(zip(tasks, results, strict=True))[: args.show]:
                print(f"--- {task['id']} (reference {task['result']}): {result.reason}")
                for message in result.messages[1:]:
                    print(f"[{message['role']}] {message.get('content')!r} {message.get('tool_calls') or ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
