"""Train the Spider SQL agent with GRPO (verl): the CPU preset on the embedded default model, or the GPU preset.

    python examples/spider/train_sql_agent.py                          # configs/spider.yaml, cpu preset, mini-Spider
    python examples/spider/train_sql_agent.py trainer.total_training_steps=20 spider.val_size=8   # any Hydra override
    python examples/spider/train_sql_agent.py spider.data_dir=/data/spider        # the real Spider release
    python examples/spider/train_sql_agent.py --cfg job                # print the composed config
    python examples/spider/train_sql_agent.py preset=gpu spider.data_dir=/data/spider \\
        agentlightning.adapter.agent_match='write_query|rewrite_query'  # Qwen2.5-Coder-1.5B-Instruct, GPU settings

What happens: Spider examples become tasks `{id, question, query, db_id, db_dir}` (`sql_agent.spider_tasks`);
`VerlAlgorithm` starts vLLM on the policy, and each step runners play `rollout.n` episodes per task — `SQLAgent`
(examples/spider/sql_agent.py: LangGraph write_query → execute_query → check_query → rewrite_query ...) talks to the
policy through the LLM proxy, runs its SQL on a read-only copy of the database, and is rewarded 1/0 by execution
match against the gold query; the proxy's token IDs become a verl batch (only the nodes `agent_match` selects), verl
updates the policy, and the new weights go into vLLM. Validation (greedy) runs on the val split before training and
at the end; this script then prints both as a table (execution accuracy, the check's "correct" rate, query error
rate, mean turns, errors / time-outs) and points at the metrics JSONL, reward curve and checkpoints.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere: `examples` importable

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from agentlightning import semconv  # noqa: E402
from agentlightning.store import LightningStore  # noqa: E402
from agentlightning.verl.config import CONFIG_DIR, register_resolvers, validate_config  # noqa: E402
from examples.spider.sql_agent import SQLAgent, spider_tasks  # noqa: E402

__all__ = ["agent_from_config", "main", "sql_agent", "summarize"]

logger = logging.getLogger("spider")
register_resolvers()

sql_agent = SQLAgent()  # the default agent (agentlightning.agent in configs/spider.yaml)


def agent_from_config(cfg: DictConfig) -> SQLAgent:
    """The agent with the `spider:` block's settings."""
    s = cfg.spider
    return SQLAgent(max_turns=int(s.max_turns), val_temperature=float(s.val_temperature),
                    table_info_truncate=int(s.table_info_truncate), execution_truncate=int(s.execution_truncate),
                    query_timeout_s=float(s.query_timeout_s), few_shot=bool(s.few_shot),
                    rollout_timeout_s=None if s.episode_timeout_s is None else float(s.episode_timeout_s))


async def _outcomes(store: LightningStore, version: int) -> list[dict[str, Any]]:
    """The `sql_result` of every validation rollout run with policy `version` (a failed rollout counts as an error)."""
    out = []
    for rollout in await store.query_rollouts(status=["succeeded", "failed"]):
        if rollout.mode != "val" or rollout.metadata.get("policy_version") != version:
            continue
        spans = await store.query_spans(rollout.rollout_id)
        result = next((s.attributes["json"] for s in spans if s.name == semconv.OBJECT
                       and s.attributes.get("name") == "sql_result"), None)
        out.append(result or {"reward": 0.0, "error": f"rollout {rollout.status} without a sql_result"})
    return out


def summarize(outcomes: list[dict[str, Any]]) -> dict[str, float]:
    """Execution accuracy, check-said-correct rate, query error rate, mean turns, errors and time-outs."""
    n = max(1, len(outcomes))
    queries = max(1, sum(int(o.get("turns", 0)) for o in outcomes))
    return {"episodes": float(len(outcomes)),
            "exec_accuracy": sum(float(o.get("reward", 0.0)) for o in outcomes) / n,
            "checked_correct": sum(bool(o.get("checked_correct")) for o in outcomes) / n,
            "query_error_rate": sum(int(o.get("query_errors", 0)) for o in outcomes) / queries,
            "mean_turns": sum(int(o.get("turns", 0)) for o in outcomes) / n,
            "errors": float(sum(o.get("error") is not None for o in outcomes)),
            "timeouts": float(sum(bool(o.get("timed_out")) for o in outcomes))}


def _table(before: dict[str, float], after: dict[str, float]) -> str:
    rows = [f"{'held-out (val split)':<22} {'before':>8} {'after':>8} {'change':>8}"]
    for key in ("exec_accuracy", "checked_correct", "query_error_rate", "mean_turns", "errors", "timeouts"):
        b, a = before.get(key, 0.0), after.get(key, 0.0)
        rows.append(f"{key:<22} {b:>8.3f} {a:>8.3f} {a - b:>+8.3f}")
    rows.append(f"{'episodes':<22} {before.get('episodes', 0):>8.0f} {after.get('episodes', 0):>8.0f}")
    return "\n".join(rows)


@hydra.main(config_path=str(CONFIG_DIR), config_name="spider", version_base=None)
def main(cfg: DictConfig) -> None:
    from agentlightning.verl.algorithm import trainer_from_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    agl = validate_config(cfg)
    if agl.train_data is not None or agl.val_data is not None:
        raise SystemExit(f"agentlightning.train_data={agl.train_data!r} / val_data={agl.val_data!r}: the Spider "
                         "script reads its tasks from a Spider folder. Fix: leave them null and set "
                         "spider.data_dir=<folder with tables.json, train_spider.json, dev.json, database/>")
    s = cfg.spider
    train = spider_tasks(str(s.train_split), s.data_dir, s.train_size)
    val = spider_tasks(str(s.val_split), s.data_dir, s.val_size)
    output = Path(agl.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    trainer = trainer_from_config(cfg)
    store: LightningStore = trainer.store
    print(f"spider: training on {len(train)} tasks ({s.train_split}), validating on {len(val)} ({s.val_split}); "
          f"policy {cfg.actor_rollout_ref.model.path}; output in {output}", flush=True)
    history = trainer.fit(agent_from_config(cfg), train, val)
    final_step = int(history[-1]["step"]) if history else 0
    before = summarize(asyncio.run(_outcomes(store, 0)))
    after = summarize(asyncio.run(_outcomes(store, final_step)))
    print("\n" + _table(before, after), flush=True)
    print(f"\nreward/accuracy curve: {output / 'reward_curve.png'}; metrics: {output / 'metrics.jsonl'}; "
          f"TensorBoard: {output / 'tensorboard'}; checkpoints: {output / 'checkpoints'}", flush=True)


if __name__ == "__main__":
    main()
