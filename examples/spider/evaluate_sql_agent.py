"""Evaluate the Spider SQL agent on a split against an OpenAI-compatible endpoint (or a checkpoint) and print the
official Spider evaluation table.

Where this sits: a user-facing recipe over `Trainer.dev`: tasks → store → runners → `SQLAgent` → LLM proxy (records
every call with token IDs) → the endpoint; the agents' final queries (their `sql_result` object spans) then go to
`spider_eval.evaluate`, which scores them exactly as the official test-suite evaluation does and prints its table:
count, execution accuracy, exact match and partial matching per hardness level and overall. A rollout without a
final query is an empty prediction (scored 0); a multi-line query is scored as the one line the official file holds.

    python examples/spider/evaluate_sql_agent.py --endpoint http://127.0.0.1:8000/v1 --model NAME --limit 10
    python examples/spider/evaluate_sql_agent.py --checkpoint outputs/spider/cpu        # a run's latest checkpoint
    python examples/spider/evaluate_sql_agent.py --checkpoint default --data-dir /data/spider --split dev \\
        --store runs/spider_dev.db --details dev_details.json

`--checkpoint` starts a vLLM server for the run on an HF model folder, a `checkpoints/global_step_N` folder, a
training output folder (its latest checkpoint) or `default` (the embedded default model).
The data folder is `--data-dir`, else `$SPIDER_DATA_DIR`, else the bundled mini-Spider. Validation rollouts are
greedy unless `--temperature` says otherwise. Traces stay in `--store` (a SQLite file) when given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentlightning import LLM, SqliteLightningStore, Trainer, semconv
from agentlightning.store import InMemoryLightningStore, LightningStore
from examples.spider.data.loader import ENV_VAR, SpiderDataError, bundled_root, load_spider
from examples.spider.spider_eval import EvalResult, evaluate
from examples.spider.sql_agent import MAX_TURNS, SQLAgent, spider_tasks

__all__ = ["build_parser", "final_queries", "main", "run_evaluation"]


_EXAMPLES = """examples:
  python examples/spider/evaluate_sql_agent.py --endpoint http://127.0.0.1:8000/v1 --model NAME --limit 10
  python examples/spider/evaluate_sql_agent.py --checkpoint default --split dev --store runs/spider_dev.db"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python examples/spider/evaluate_sql_agent.py",
        description="Run the Spider SQL agent on a split (through Trainer.dev, traces recorded) and print the "
                    "official Spider table: count, execution accuracy, exact match and partial matching per hardness "
                    "level, scored exactly as the official test-suite evaluation.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EXAMPLES)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--endpoint", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    where.add_argument("--checkpoint", help="HF model folder, checkpoints/global_step_N, a training output folder "
                                            "(its latest checkpoint), or 'default' (the embedded default model)")
    parser.add_argument("--model", help="model name the endpoint serves (required with --endpoint)")
    parser.add_argument("--split", default="dev", help="Spider split: train, train_others, dev or test (default dev)")
    parser.add_argument("--data-dir", type=Path, help=f"Spider folder (default: ${ENV_VAR}, else the bundled "
                                                      "mini-Spider)")
    parser.add_argument("--limit", type=int, help="evaluate the first N examples only")
    parser.add_argument("--n-runners", type=int, default=2, help="runner processes (0: in this process; default 2)")
    parser.add_argument("--max-turns", type=int, default=MAX_TURNS,
                        help=f"queries per episode, rewrites included (default {MAX_TURNS})")
    parser.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0: greedy)")
    parser.add_argument("--max-tokens", type=int, default=256, help="max tokens per model reply (default 256)")
    parser.add_argument("--max-model-len", type=int, default=4096, help="vLLM context length with --checkpoint")
    parser.add_argument("--no-few-shot", action="store_true", help="do not send the worked examples (FEW_SHOT)")
    parser.add_argument("--etype", default="all", choices=("exec", "match", "all"), help="metrics (default all)")
    parser.add_argument("--store", help="keep the traces in this SQLite file (default: in memory)")
    parser.add_argument("--details", type=Path, help="write per-example results (JSON) to this file")
    parser.add_argument("--verbose", action="store_true", help="print every example that is not fully correct")
    return parser


async def _final_queries(store: LightningStore, rollout_ids: Sequence[str]) -> list[dict[str, Any] | None]:
    out: list[dict[str, Any] | None] = []
    for rollout_id in rollout_ids:
        spans = await store.query_spans(rollout_id)
        out.append(next((s.attributes["json"] for s in reversed(spans) if s.name == semconv.OBJECT
                         and s.attributes.get("name") == "sql_result"), None))
    return out


def final_queries(store: LightningStore, rollout_ids: Sequence[str]) -> list[dict[str, Any] | None]:
    """The `sql_result` object each rollout emitted (None for a rollout that emitted none)."""
    return asyncio.run(_final_queries(store, rollout_ids))


def run_evaluation(llm: LLM, split: str = "dev", data_dir: str | Path | None = None, limit: int | None = None,
                   n_runners: int = 2, max_turns: int = MAX_TURNS, etype: str = "all",
                   store: LightningStore | None = None, few_shot: bool = True) -> tuple[EvalResult, list[dict[str, Any] | None]]:
    """Run the agent on the split via `Trainer.dev` and evaluate its final queries; returns (result, sql_results)."""
    root = data_dir if data_dir is not None else (None if os.environ.get(ENV_VAR) else bundled_root())
    dataset = load_spider(split, root)
    tasks = spider_tasks(split, dataset.root, limit)
    store = store or InMemoryLightningStore()
    temperature = llm.sampling_parameters.get("temperature")
    agent = SQLAgent(max_turns=max_turns, val_temperature=temperature, few_shot=few_shot)
    report = Trainer(n_runners=n_runners, store=store).dev(agent, tasks, llm, mode="val")
    results = final_queries(store, [row["rollout_id"] for row in report.rows])
    preds = [(r or {}).get("final_query", "") for r in results]
    gold = [(t["query"], t["db_id"]) for t in tasks]
    labels = [f"{split}[{i}]" for i in range(len(tasks))]
    return evaluate(gold, preds, dataset.db_dir, dataset.tables_path, etype, labels=labels), results


def _llm_server(args: argparse.Namespace) -> contextlib.AbstractContextManager[Any]:
    if args.checkpoint is None:
        return contextlib.nullcontext()
    from agentlightning.verl.algorithm import serve_checkpoint

    try:
        return serve_checkpoint(args.checkpoint, ["--max-model-len", str(args.max_model_len)])
    except FileNotFoundError as exc:
        raise SystemExit(f"error: --checkpoint {args.checkpoint}: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.endpoint is not None and not args.model:
        print("error: --endpoint needs --model NAME (the name the server serves, see GET /v1/models)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store: LightningStore = SqliteLightningStore(args.store) if args.store else InMemoryLightningStore()
    sampling = {"temperature": args.temperature, "max_tokens": args.max_tokens}
    try:
        with _llm_server(args) as server:
            endpoint, model = (args.endpoint, args.model) if server is None else (server.base_url, server.model_name)
            result, results = run_evaluation(LLM(endpoint=endpoint, model=model, sampling_parameters=sampling),
                                             args.split, args.data_dir, args.limit, args.n_runners, args.max_turns,
                                             args.etype, store, not args.no_few_shot)
    except SpiderDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.verbose:
        for example, agent in zip(result.examples, results, strict=True):
            if example.exec_score == 0 or example.exact_score == 0:
                print(f"[{example.hardness}] {example.db_id}: {(agent or {}).get('question', '')}")
                print(f"  pred: {example.pred}\n  gold: {example.gold}")
                for reason in (example.exec_reason, example.exact_reason, (agent or {}).get("error")):
                    if reason:
                        print(f"  {reason}")
    errors = sum(1 for r in results if r is None or r.get("error"))
    timeouts = sum(1 for r in results if r and r.get("timed_out"))
    print(f"\n{args.split}: {len(results)} examples; agent errors {errors} (time-outs {timeouts}); "
          f"mean turns {sum((r or {}).get('turns', 0) for r in results) / max(1, len(results)):.2f}")
    print(result.format_table())
    if args.details:
        details = result.to_dict()
        for example, agent in zip(details["examples"], results, strict=True):
            example["agent"] = agent
        args.details.write_text(json.dumps(details, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
