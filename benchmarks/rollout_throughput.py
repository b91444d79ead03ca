"""Rollout throughput: the full runtime (runner processes + LLM proxy + store + tracer) vs raw vLLM, in one run.

Both sides send the same chat requests (one per task, `max_tokens` tokens each with `ignore_eos`, so both generate
exactly the same number of tokens) to the same vLLM server at the same concurrency:
- raw: an asyncio client straight to vLLM (`concurrency` requests in flight);
- runtime: `Trainer.session` with `--runners` runner processes running `concurrency / runners` rollouts each at
  once (`RunnerConfig.max_concurrency`), a one-call agent through the proxy, which records a span per call, and a
  reward span per rollout.
Prints rollouts/min, tokens/s and the runtime/raw ratio. Target: the runtime keeps >= 80% of raw token throughput.

Run: `.venv/bin/python benchmarks/rollout_throughput.py [--rollouts 32] [--concurrency 8] [--runners 2]
[--vllm-url URL --model M]`
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx

from agentlightning import semconv
from agentlightning.agent import rollout
from agentlightning.clients import shared_async_http_client
from agentlightning.runner import RunnerConfig
from agentlightning.store import InMemoryLightningStore
from agentlightning.trainer import Trainer
from agentlightning.types import LLM


def make_tasks(n: int) -> list[dict[str, Any]]:
    return [{"id": f"q{i}", "question": f"Count from {i} to {i + 20}, separated by commas."} for i in range(n)]


def request_body(model: str, question: str, max_tokens: int) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens,
            "temperature": 0.0, "ignore_eos": True}


@rollout
async def one_call_agent(task: dict[str, Any], llm: LLM) -> float:
    body = request_body(llm.model, task["question"], llm.sampling_parameters["max_tokens"])
    response = await shared_async_http_client().post(f"{llm.get_base_url()}/chat/completions", json=body, timeout=600)
    response.raise_for_status()
    return 1.0


async def raw(url: str, model: str, tasks: list[dict[str, Any]], concurrency: int, max_tokens: int
              ) -> tuple[float, int]:
    semaphore = asyncio.Semaphore(concurrency)
    tokens = 0

    async def one(http: httpx.AsyncClient, task: dict[str, Any]) -> None:
        nonlocal tokens
        async with semaphore:
            response = await http.post(f"{url}/chat/completions", json=request_body(model, task["question"],
                                                                                      max_tokens))
            tokens += response.json()["usage"]["completion_tokens"]

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency * 2)) as http:
        await asyncio.gather(*(one(http, t) for t in tasks))
    return time.perf_counter() - started, tokens


async def runtime(url: str, model: str, tasks: list[dict[str, Any]], concurrency: int, max_tokens: int,
                  runners: int = 2) -> tuple[float, int]:
    store = InMemoryLightningStore()
    runners = max(1, min(runners, concurrency))
    per_runner = -(-concurrency // runners)
    trainer = Trainer(n_runners=runners, store=store, runner_config=RunnerConfig(max_concurrency=per_runner))
    async with trainer.session(one_call_agent, [url]) as session:
        resources = await store.add_resources({"main_llm": session.proxy.as_resource(
            model=model, sampling_parameters={"max_tokens": max_tokens})})
        await session.run_rollouts(tasks[:concurrency], "train", resources.resources_id)  # warm the runners up
        started = time.perf_counter()
        rollouts = await session.run_rollouts(tasks, "train", resources.resources_id)
        elapsed = time.perf_counter() - started
    tokens = 0
    for r in rollouts:
        assert r.status == "succeeded", f"rollout {r.rollout_id} {r.status}"
        for span in await store.query_spans(r.rollout_id):
            if span.name == semconv.LLM_CALL:
                tokens += (span.attributes.get("usage") or {}).get("completion_tokens", 0)
    return elapsed, tokens


async def main_async(args: argparse.Namespace) -> None:
    tasks = make_tasks(args.rollouts)
    if args.vllm_url:
        url, model = args.vllm_url, args.model
        server = None
    else:
        from agentlightning.models import default_model_path
        from agentlightning.serving import VLLMServer

        server = VLLMServer(default_model_path(), served_model_name="policy",
                            extra_args=["--max-model-len", "2048"]).start()
        url, model = server.base_url, "policy"
    try:
        await raw(url, model, tasks[: args.concurrency], args.concurrency, args.max_tokens)  # warm-up
        results = {}
        for name in ("raw vLLM", "runtime", "raw vLLM (again)"):
            if name == "runtime":
                seconds, tokens = await runtime(url, model, tasks, args.concurrency, args.max_tokens, args.runners)
            else:
                seconds, tokens = await raw(url, model, tasks, args.concurrency, args.max_tokens)
            results[name] = (seconds, tokens)
    finally:
        if server is not None:
            server.stop()
    print(f"rollout_throughput: {args.rollouts} rollouts, 1 call x {args.max_tokens} tokens each, "
          f"concurrency {args.concurrency} (runtime: {args.runners} runner processes)")
    print(f"{'path':<18} {'seconds':>8} {'rollouts/min':>13} {'tokens/s':>9}")
    for name, (seconds, tokens) in results.items():
        print(f"{name:<18} {seconds:>8.2f} {60 * args.rollouts / seconds:>13.1f} {tokens / seconds:>9.1f}")
    raw_tps = sum(results[k][1] / results[k][0] for k in ("raw vLLM", "raw vLLM (again)")) / 2
    runtime_tps = results["runtime"][1] / results["runtime"][0]
    print(f"runtime / raw token throughput = {runtime_tps / raw_tps:.3f} (target >= 0.80; raw = mean of the two "
          "raw runs around the runtime run)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=8, help="requests (rollouts) in flight")
    parser.add_argument("--runners", type=int, default=2, help="runner processes sharing the concurrency")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--vllm-url", help="use a running vLLM (OpenAI base URL ending in /v1) instead of starting one")
    parser.add_argument("--model", default="policy", help="served model name at --vllm-url")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
