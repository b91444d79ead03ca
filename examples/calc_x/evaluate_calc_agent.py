"""Score the calc_x agent on a split against any OpenAI-compatible endpoint or a saved training checkpoint.

Where this sits: a user-facing recipe over `Trainer.dev`: tasks → store → runners → `CalcXAgent` → LLM proxy (records
every call with token IDs) → the endpoint. The episodes' `calc_result` spans give the numbers training prints before
and after (accuracy, answer-format rate, tool-call rate, mean turns, mean response tokens), plus accuracy per
difficulty.

    python examples/calc_x/evaluate_calc_agent.py --checkpoint outputs/calc_x/cpu        # a run's latest checkpoint
    python examples/calc_x/evaluate_calc_agent.py --checkpoint default --limit 20         # the untrained default model
    python examples/calc_x/evaluate_calc_agent.py --endpoint http://127.0.0.1:8000/v1 --model NAME --split train

`--checkpoint` takes an HF model folder, a `checkpoints/global_step_N` folder, a training output folder (its latest
checkpoint) or `default`, and starts vLLM on it (CPU: ~30 s) with the tool-call flags training uses. Episodes are
greedy unless `--temperature` says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentlightning import LLM, SqliteLightningStore, Trainer, semconv
from agentlightning.models import DEFAULT_MAX_MODEL_LEN
from agentlightning.store import InMemoryLightningStore, LightningStore
from agentlightning.types import Span
from examples.calc_x.agent import CalcXAgent
from examples.calc_x.calc_agent import MAX_TURNS
from examples.calc_x.data import BUNDLED_TEST, BUNDLED_TRAIN, CalcXDataError, load_calc_x
from examples.calc_x.evaluate import TOOL_PARSER_ARGS

__all__ = ["build_parser", "episode_outcome", "format_results", "main", "run_evaluation", "summarize"]

_SPLITS = {"test": BUNDLED_TEST, "train": BUNDLED_TRAIN}


def episode_outcome(task: Any, spans: Sequence[Span]) -> dict[str, Any]:
    """One episode from its spans: the `calc_result` object (a failed episode without one counts as wrong), its
    response token count and the task's difficulty."""
    result = next((s.attributes["json"] for s in spans if s.name == semconv.OBJECT
                   and s.attributes.get("name") == "calc_result"), {"reward": 0.0, "format_ok": False,
                                                                    "tool_calls": 0, "turns": 0})
    tokens = sum(len(s.attributes.get("response_token_ids") or []) for s in spans if s.name == semconv.LLM_CALL)
    difficulty = task.get("difficulty") if isinstance(task, dict) else None
    return {**result, "tokens": tokens, "difficulty": difficulty}


def summarize(outcomes: list[dict[str, Any]]) -> dict[str, float]:
    """accuracy, answer-format rate, tool-call rate, mean turns and mean response tokens of episodes, and
    `accuracy/<difficulty>` for each difficulty present."""
    n = max(1, len(outcomes))
    out = {"episodes": float(len(outcomes)),
           "accuracy": sum(o["reward"] for o in outcomes) / n,
           "format_rate": sum(bool(o["format_ok"]) for o in outcomes) / n,
           "tool_call_rate": sum(o["tool_calls"] > 0 for o in outcomes) / n,
           "mean_turns": sum(o["turns"] for o in outcomes) / n,
           "mean_tokens": sum(o["tokens"] for o in outcomes) / n}
    for difficulty in sorted({str(o["difficulty"]) for o in outcomes if o.get("difficulty")}):
        group = [o for o in outcomes if str(o.get("difficulty")) == difficulty]
        out[f"accuracy/{difficulty}"] = sum(o["reward"] for o in group) / len(group)
        out[f"episodes/{difficulty}"] = float(len(group))
    return out


def format_results(columns: dict[str, dict[str, float]], title: str = "calc_x") -> str:
    """`summarize` results side by side (one column each)."""
    names = list(columns)
    keys = ["accuracy", "format_rate", "tool_call_rate", "mean_turns", "mean_tokens"]
    keys += sorted({k for c in columns.values() for k in c if k.startswith("accuracy/")})
    rows = [f"{title:<22} " + " ".join(f"{n:>8}" for n in names)]
    for key in keys:
        rows.append(f"{key:<22} " + " ".join(f"{columns[n].get(key, 0.0):>8.3f}" for n in names))
    for key in ["episodes"] + sorted({k for c in columns.values() for k in c if k.startswith("episodes/")}):
        rows.append(f"{key:<22} " + " ".join(f"{columns[n].get(key, 0):>8.0f}" for n in names))
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python examples/calc_x/evaluate_calc_agent.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--endpoint", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    where.add_argument("--checkpoint", help="HF model folder, checkpoints/global_step_N, a training output folder "
                                            "(its latest checkpoint), or 'default' (the embedded default model)")
    parser.add_argument("--model", help="model name the endpoint serves (required with --endpoint)")
    parser.add_argument("--split", choices=sorted(_SPLITS), default="test", help="bundled split (default: test)")
    parser.add_argument("--data", type=Path, help="a Calc-X .jsonl/.parquet file instead of a bundled split")
    parser.add_argument("--limit", type=int, help="only the first N tasks")
    parser.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0: greedy)")
    parser.add_argument("--max-turns", type=int, default=MAX_TURNS,
                        help=f"model calls per episode (default {MAX_TURNS}, as training)")
    parser.add_argument("--n-runners", type=int, default=2, help="runner processes (default 2)")
    parser.add_argument("--store", type=Path, help="keep the traces in this SQLite file (default: in memory)")
    return parser


def run_evaluation(llm: LLM, tasks: list[dict[str, Any]], store: LightningStore, n_runners: int = 2,
                   max_turns: int = MAX_TURNS) -> list[dict[str, Any]]:
    """Run `CalcXAgent` on `tasks` through `Trainer.dev`; one outcome dict per task (`episode_outcome`)."""
    trainer = Trainer(n_runners=n_runners, store=store)
    report = trainer.dev(CalcXAgent(max_turns=max_turns), tasks, llm)

    async def outcomes() -> list[dict[str, Any]]:
        return [episode_outcome(task, await store.query_spans(row["rollout_id"]))
                for task, row in zip(tasks, report.rows, strict=True)]

    return asyncio.run(outcomes())


def _llm_server(args: argparse.Namespace) -> contextlib.AbstractContextManager[Any]:
    if args.checkpoint is None:
        return contextlib.nullcontext()
    from agentlightning.verl.algorithm import serve_checkpoint

    return serve_checkpoint(args.checkpoint, ["--max-model-len", str(DEFAULT_MAX_MODEL_LEN), *TOOL_PARSER_ARGS])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.endpoint is not None and not args.model:
        print("error: --endpoint needs --model NAME (the name the server serves, see GET /v1/models)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data = args.data or _SPLITS[args.split]
    try:
        tasks = load_calc_x(data)[: args.limit]
        with _llm_server(args) as server:
            endpoint, model = (args.endpoint, args.model) if server is None else (server.base_url, server.model_name)
            llm = LLM(endpoint=endpoint, model=model, sampling_parameters={"temperature": args.temperature})
            store: LightningStore = SqliteLightningStore(args.store) if args.store else InMemoryLightningStore()
            outcomes = run_evaluation(llm, tasks, store, args.n_runners, args.max_turns)
    except (CalcXDataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    label = f"{data.name}" + (f"[:{args.limit}]" if args.limit else "")
    print("\n" + format_results({label: summarize(outcomes)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
