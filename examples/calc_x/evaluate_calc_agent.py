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

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere: `examples` importable

from agentlightning import LLM, SqliteLightningStore, Trainer  # noqa: E402
from agentlightning.store import InMemoryLightningStore, LightningStore  # noqa: E402
from examples.calc_x.data import BUNDLED_TEST, BUNDLED_TRAIN, CalcXDataError, load_calc_x  # noqa: E402
from examples.calc_x.evaluate import TOOL_PARSER_ARGS  # noqa: E402
from examples.calc_x.train_calc_agent import CalcXAgent, episode_outcome, format_results, summarize  # noqa: E402

__all__ = ["build_parser", "main", "run_evaluation"]

_SPLITS = {"test": BUNDLED_TEST, "train": BUNDLED_TRAIN}


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
    parser.add_argument("--max-turns", type=int, default=3, help="model calls per episode (default 3, as training)")
    parser.add_argument("--n-runners", type=int, default=2, help="runner processes (default 2)")
    parser.add_argument("--store", type=Path, help="keep the traces in this SQLite file (default: in memory)")
    return parser


def run_evaluation(llm: LLM, tasks: list[dict[str, Any]], store: LightningStore, n_runners: int = 2,
                   max_turns: int = 3) -> list[dict[str, Any]]:
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

    return serve_checkpoint(args.checkpoint, ["--max-model-len", "2048", *TOOL_PARSER_ARGS])


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
