"""Train the calc_x calculator agent with GRPO (verl) on the embedded default model — the main demo.

    python examples/calc_x/train_calc_agent.py                          # configs/calc_x.yaml, cpu preset
    python examples/calc_x/train_calc_agent.py trainer.total_training_steps=20 data.train_batch_size=8 \\
        actor_rollout_ref.rollout.n=4                                   # any Hydra override
    python examples/calc_x/train_calc_agent.py --cfg job                # print the composed config
    python examples/calc_x/train_calc_agent.py preset=gpu               # Qwen2.5-1.5B-Instruct hyperparameters

What happens: `VerlAlgorithm` starts vLLM on the policy, and each step runners play `rollout.n` episodes per task —
`calc_agent` (examples/calc_x/calc_agent.py) talks to the policy through the LLM proxy, calls the MCP calculator,
answers `### ANSWER: n ###`, and is rewarded 1/0 by `reward.score`; the proxy's token IDs become a verl batch, verl
updates the policy, and the new weights go into vLLM. Validation (greedy) runs on the test split before training
and at the end; this script then prints both as a table (accuracy, answer-format rate, tool-call rate, mean turns,
tokens) and points at the reward/accuracy curve PNG, metrics JSONL and TensorBoard files.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `examples` importable

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from agentlightning import LitAgent, emit_object, semconv  # noqa: E402
from agentlightning.agent import resolve_llm  # noqa: E402
from agentlightning.store import LightningStore  # noqa: E402
from agentlightning.types import AttemptedRollout, NamedResources  # noqa: E402
from agentlightning.verl.config import CONFIG_DIR, register_resolvers, validate_config  # noqa: E402
from examples.calc_x.calc_agent import calc_agent  # noqa: E402
from examples.calc_x.data import load_calc_x  # noqa: E402
from examples.calc_x.tools import CalculatorTool  # noqa: E402

__all__ = ["CalcXAgent", "calc_x_agent", "main", "summarize"]

logger = logging.getLogger("calc_x")
register_resolvers()

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
    span, its reward returned (1.0 correct, 0.0 otherwise)."""

    def __init__(self, max_turns: int = 3) -> None:
        self.max_turns = max_turns

    async def training_rollout(self, task: Any, resources: NamedResources, rollout: AttemptedRollout) -> float:
        result = await calc_agent(task, resolve_llm(resources, rollout), await _calculator(),
                                  max_turns=self.max_turns)
        emit_object({k: v for k, v in asdict(result).items() if k != "messages"}, name="calc_result")
        return result.reward


calc_x_agent = CalcXAgent()


async def _outcomes(store: LightningStore, version: int) -> list[dict[str, Any]]:
    """The `calc_result` of every validation rollout run with policy `version`, plus its token count."""
    out = []
    for rollout in await store.query_rollouts(status=["succeeded", "failed"]):
        if rollout.mode != "val" or rollout.metadata.get("policy_version") != version:
            continue
        spans = await store.query_spans(rollout.rollout_id)
        result = next((s.attributes["json"] for s in spans if s.name == semconv.OBJECT
                       and s.attributes.get("name") == "calc_result"), {"reward": 0.0, "format_ok": False,
                                                                        "tool_calls": 0, "turns": 0})
        tokens = sum(len(s.attributes.get("response_token_ids") or []) for s in spans if s.name == semconv.LLM_CALL)
        out.append({**result, "tokens": tokens})
    return out


def summarize(outcomes: list[dict[str, Any]]) -> dict[str, float]:
    """accuracy, answer-format rate, tool-call rate, mean turns and mean response tokens of validation episodes."""
    n = max(1, len(outcomes))
    return {"episodes": float(len(outcomes)),
            "accuracy": sum(o["reward"] for o in outcomes) / n,
            "format_rate": sum(bool(o["format_ok"]) for o in outcomes) / n,
            "tool_call_rate": sum(o["tool_calls"] > 0 for o in outcomes) / n,
            "mean_turns": sum(o["turns"] for o in outcomes) / n,
            "mean_tokens": sum(o["tokens"] for o in outcomes) / n}


def _data_path(path: str) -> str:
    """A data path as given if it exists (absolute, or relative to the working directory), else relative to the
    repository (the config's defaults name the bundled files that way)."""
    return path if Path(path).exists() else str(ROOT / path)


def _table(before: dict[str, float], after: dict[str, float]) -> str:
    rows = [f"{'held-out (test split)':<22} {'before':>8} {'after':>8} {'change':>8}"]
    for key in ("accuracy", "format_rate", "tool_call_rate", "mean_turns", "mean_tokens"):
        b, a = before.get(key, 0.0), after.get(key, 0.0)
        rows.append(f"{key:<22} {b:>8.3f} {a:>8.3f} {a - b:>+8.3f}")
    rows.append(f"{'episodes':<22} {before.get('episodes', 0):>8.0f} {after.get('episodes', 0):>8.0f}")
    return "\n".join(rows)


@hydra.main(config_path=str(CONFIG_DIR), config_name="calc_x", version_base=None)
def main(cfg: DictConfig) -> None:
    from agentlightning.verl.algorithm import trainer_from_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the progress bar
    agl = validate_config(cfg)
    if agl.train_data is None:
        raise SystemExit("agentlightning.train_data is not set. Fix: agentlightning.train_data=<calc-x .jsonl>")
    train = load_calc_x(_data_path(agl.train_data))
    val = load_calc_x(_data_path(agl.val_data)) if agl.val_data else []
    if cfg.calc_x.val_size is not None:
        val = val[: int(cfg.calc_x.val_size)]
    output = Path(agl.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    trainer = trainer_from_config(cfg)
    store: LightningStore = trainer.store
    print(f"calc_x: training on {len(train)} tasks, validating on {len(val)}; output in {output}", flush=True)
    history = trainer.fit(CalcXAgent(max_turns=int(cfg.calc_x.max_turns)), train, val)
    final_step = int(history[-1]["step"]) if history else 0
    before = summarize(asyncio.run(_outcomes(store, 0)))
    after = summarize(asyncio.run(_outcomes(store, final_step)))
    print("\n" + _table(before, after), flush=True)
    print(f"\nreward/accuracy curve: {output / 'reward_curve.png'}; metrics: {output / 'metrics.jsonl'}; "
          f"TensorBoard: {output / 'tensorboard'}; checkpoints: {output / 'checkpoints'}", flush=True)


if __name__ == "__main__":
    main()
