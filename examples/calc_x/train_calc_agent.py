"""Train the calc_x calculator agent with GRPO (verl) on the embedded default model — the main demo.

    python examples/calc_x/train_calc_agent.py                          # configs/calc_x.yaml, cpu preset
    python examples/calc_x/train_calc_agent.py trainer.total_training_steps=20 data.train_batch_size=8 \\
        actor_rollout_ref.rollout.n=4                                   # any Hydra override
    python examples/calc_x/train_calc_agent.py --cfg job                # print the composed config
    python examples/calc_x/train_calc_agent.py preset=gpu               # Qwen2.5-1.5B-Instruct hyperparameters

What happens: `VerlAlgorithm` builds verl's RayPPOTrainer (FSDP ranks and vLLM rollout replicas on a local Ray, on
CPU too), and each step runners play `rollout.n` episodes per task —
`calc_agent` (examples/calc_x/calc_agent.py) talks to the policy through the LLM proxy, calls the MCP calculator,
answers `### ANSWER: n ###`, and is rewarded 1/0 by `reward.score`; the proxy's token IDs become a verl batch, verl
updates the policy, and verl's weight sync puts the new weights into the replicas. Validation (greedy) runs on the test split before training
and at the end; this script then prints both as a table (accuracy, answer-format rate, tool-call rate, mean turns,
tokens, accuracy per difficulty), writes it to `held_out.json`, and points at the reward/accuracy curve PNG, metrics
JSONL and TensorBoard files.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `examples` importable

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from agentlightning import LitAgent, emit_metrics, emit_object, semconv  # noqa: E402
from agentlightning.agent import resolve_llm  # noqa: E402
from agentlightning.store import LightningStore  # noqa: E402
from agentlightning.types import AttemptedRollout, NamedResources, Span  # noqa: E402
from agentlightning.verl.config import CONFIG_DIR, register_resolvers, validate_config  # noqa: E402
from examples.calc_x.calc_agent import calc_agent  # noqa: E402
from examples.calc_x.data import load_calc_x  # noqa: E402
from examples.calc_x.tools import CalculatorTool  # noqa: E402

__all__ = ["CalcXAgent", "calc_x_agent", "episode_outcome", "format_results", "main", "summarize"]

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
        emit_metrics({"tool_calls": result.tool_calls, "native_tool_calls": result.native_tool_calls,
                      "format_ok": result.format_ok, "turns": result.turns, "episode_error": result.error is not None})
        return result.reward


calc_x_agent = CalcXAgent()


def episode_outcome(task: Any, spans: Sequence[Span]) -> dict[str, Any]:
    """One episode from its spans: the `calc_result` object (a failed episode without one counts as wrong), its
    response token count and the task's difficulty."""
    result = next((s.attributes["json"] for s in spans if s.name == semconv.OBJECT
                   and s.attributes.get("name") == "calc_result"), {"reward": 0.0, "format_ok": False,
                                                                    "tool_calls": 0, "turns": 0})
    tokens = sum(len(s.attributes.get("response_token_ids") or []) for s in spans if s.name == semconv.LLM_CALL)
    difficulty = task.get("difficulty") if isinstance(task, dict) else None
    return {**result, "tokens": tokens, "difficulty": difficulty}


async def _outcomes(store: LightningStore, version: int) -> list[dict[str, Any]]:
    """`episode_outcome` of every validation rollout run with policy `version`."""
    out = []
    for rollout in await store.query_rollouts(status=["succeeded", "failed"]):
        if rollout.mode == "val" and rollout.metadata.get("policy_version") == version:
            out.append(episode_outcome(rollout.input, await store.query_spans(rollout.rollout_id)))
    return out


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


def _data_path(path: str) -> str:
    """A data path as given if it exists (absolute, or relative to the working directory), else relative to the
    repository (the config's defaults name the bundled files that way)."""
    return path if Path(path).exists() else str(ROOT / path)


def format_results(columns: dict[str, dict[str, float]], title: str = "calc_x", change: bool = False) -> str:
    """`summarize` results side by side (one column each); with `change`, the last column minus the first."""
    names = list(columns)
    keys = ["accuracy", "format_rate", "tool_call_rate", "mean_turns", "mean_tokens"]
    keys += sorted({k for c in columns.values() for k in c if k.startswith("accuracy/")})
    rows = [f"{title:<22} " + " ".join(f"{n:>8}" for n in names) + (f" {'change':>8}" if change else "")]
    for key in keys:
        values = [columns[n].get(key, 0.0) for n in names]
        rows.append(f"{key:<22} " + " ".join(f"{v:>8.3f}" for v in values)
                    + (f" {values[-1] - values[0]:>+8.3f}" if change else ""))
    for key in ["episodes"] + sorted({k for c in columns.values() for k in c if k.startswith("episodes/")}):
        rows.append(f"{key:<22} " + " ".join(f"{columns[n].get(key, 0):>8.0f}" for n in names))
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
    if cfg.calc_x.train_difficulties is not None:
        wanted = set(cfg.calc_x.train_difficulties)
        known = {row.get("difficulty") for row in train}
        if not wanted <= known:
            raise SystemExit(f"calc_x.train_difficulties={sorted(wanted)} names difficulties not in "
                             f"{agl.train_data} (it has {sorted(str(k) for k in known)}). Fix: pick from those, or "
                             "null for every row")
        train = [row for row in train if row.get("difficulty") in wanted]
    val = load_calc_x(_data_path(agl.val_data)) if agl.val_data else []
    if cfg.calc_x.val_size is not None:
        val = val[: int(cfg.calc_x.val_size)]
    output = Path(agl.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    trainer = trainer_from_config(cfg)
    store: LightningStore = trainer.store
    print(f"calc_x: training on {len(train)} tasks, validating on {len(val)}; output in {output}", flush=True)
    history = trainer.fit(CalcXAgent(max_turns=int(cfg.calc_x.max_turns)), train, val)
    if not history:
        print(f"\nnothing to do: {output / 'checkpoints'} already holds step {cfg.trainer.total_training_steps}. "
              "Fix: raise trainer.total_training_steps to continue, or trainer.resume_mode=disable to start over",
              flush=True)
        return
    final_step = int(history[-1]["step"])
    before = summarize(asyncio.run(_outcomes(store, 0)))
    after = summarize(asyncio.run(_outcomes(store, final_step)))
    print("\n" + format_results({"before": before, "after": after}, "held-out (test split)", change=True),
          flush=True)
    (output / "held_out.json").write_text(json.dumps({"before": before, "after": after, "step": final_step}))
    print(f"\nreward/accuracy curve: {output / 'reward_curve.png'}; metrics: {output / 'metrics.jsonl'}; "
          f"TensorBoard: {output / 'tensorboard'}; checkpoints: {output / 'checkpoints'}", flush=True)


if __name__ == "__main__":
    main()
