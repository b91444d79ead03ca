"""Proxy overhead: the same requests sent straight to vLLM and through the LLM proxy, at several concurrencies.

Where this sits: task → store → runner → agent → **proxy** → vLLM → spans → adapter → verl. The proxy must cost
(almost) nothing: target p50 latency <= 1.05x direct and throughput >= 0.95x direct.

Set-up, all in one run: a vLLM server (started here with the default model unless `--vllm-url` is given), an
in-memory store served over HTTP in this process, and `agl proxy` as its own process (as in production), recording
every call of the benchmark rollout as a span. Requests use temperature 0 and `ignore_eos` so each one generates
exactly `--max-tokens` tokens. Each concurrency level runs `--rounds` rounds on the same prompts, alternating which
mode goes first (direct→proxy, proxy→direct, ...) so that neither profits from a warmer server or a quieter machine;
the rounds are pooled. Prints p50/p95/p99 latency, output tokens/s and error rate per mode, and proxy/direct ratios.

Example: `python benchmarks/proxy_overhead.py --concurrency 1 8 32 --max-tokens 16`
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time

import httpx

from agentlightning.serving import VLLMServer, find_free_port
from agentlightning.store import InMemoryLightningStore, LightningStoreClient, LightningStoreServer

PROMPTS = ["What is 2+2?", "Name a color.", "Say hello in French.", "What is the capital of Italy?",
           "Count to three.", "Give me a fruit.", "What day comes after Monday?", "Name an animal."]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vllm-url", help="use this running vLLM (http://host:port/v1) instead of starting one")
    parser.add_argument("--model", default=None, help="model to serve when starting vLLM (default: default model)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32], help="levels (default: 1 8 32)")
    parser.add_argument("--requests", type=int, nargs="+", default=[12, 32, 64],
                        help="requests per level, one number per level or one for all (default: 12 32 64)")
    parser.add_argument("--max-tokens", type=int, default=16, help="output tokens per request (default: 16)")
    parser.add_argument("--warmup", type=int, default=4, help="warm-up requests per mode (default: 4)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds per level, alternating which mode goes first (default: 2)")
    return parser.parse_args(argv)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summarize(runs: list[dict[str, float | list[float]]]) -> dict[str, float]:
    """Pool rounds of `run_level`: percentiles over all latencies, tokens/s = all tokens / all wall time."""
    latencies = [x for r in runs for x in r["latencies"]]  # type: ignore[union-attr]
    n = sum(r["n"] for r in runs)  # type: ignore[misc]
    return {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95), "p99": percentile(latencies, 99),
            "tok_s": sum(r["tokens"] for r in runs) / sum(r["wall"] for r in runs),  # type: ignore[misc]
            "err": sum(r["errors"] for r in runs) / n, "n": n}  # type: ignore[misc]


async def run_level(base_url: str, model: str, concurrency: int, n: int, max_tokens: int
                    ) -> dict[str, float | list[float]]:
    latencies: list[float] = []
    errors = 0
    tokens = 0
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=base_url, timeout=300, limits=limits) as client:
        async def one(i: int) -> None:
            nonlocal errors, tokens
            body = {"model": model, "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                    "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True}
            async with semaphore:
                started = time.perf_counter()
                try:
                    response = await client.post("/chat/completions", json=body)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - started
            if ok:
                latencies.append(elapsed)
                tokens += response.json()["usage"]["completion_tokens"]
            else:
                errors += 1

        started = time.perf_counter()
        await asyncio.gather(*[one(i) for i in range(n)])
        wall = time.perf_counter() - started
    return {"latencies": latencies, "tokens": tokens, "wall": wall, "errors": errors, "n": n}


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"agl proxy did not open port {port} within {timeout} s")


async def benchmark(args: argparse.Namespace, vllm_url: str, model: str) -> None:
    memory = InMemoryLightningStore()
    store_server = LightningStoreServer(memory)
    store_server.start_in_thread()
    store = LightningStoreClient(store_server.url)
    port = find_free_port()
    proxy = subprocess.Popen([sys.executable, "-m", "agentlightning.cli.main", "proxy", "--backend", vllm_url,
                              "--store", store_server.url, "--port", str(port)])
    try:
        wait_port(port)
        await store.enqueue_rollout(input={"benchmark": True})
        rollout = await store.dequeue_rollout(worker_id="bench")
        assert rollout is not None
        proxy_url = f"http://127.0.0.1:{port}/rollout/{rollout.rollout_id}/attempt/{rollout.attempt.attempt_id}/v1"
        for url in (vllm_url, proxy_url):
            await run_level(url, model, 2, args.warmup, args.max_tokens)
        counts = args.requests if len(args.requests) == len(args.concurrency) else args.requests[:1] * len(
            args.concurrency)
        print(f"\nmodel {model}, max_tokens {args.max_tokens}, vLLM {vllm_url}, proxy :{port} (recording spans)\n")
        header = f"{'conc':>4} {'mode':>6} {'n':>4} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7} {'tok/s':>8} {'err':>5}"
        print(header)
        print("-" * len(header))
        for concurrency, n in zip(args.concurrency, counts, strict=True):
            runs: dict[str, list[dict[str, float | list[float]]]] = {"direct": [], "proxy": []}
            for round_ in range(args.rounds):
                order = [("direct", vllm_url), ("proxy", proxy_url)]
                for mode, url in order if round_ % 2 == 0 else order[::-1]:
                    runs[mode].append(await run_level(url, model, concurrency, n, args.max_tokens))
            direct, proxied = summarize(runs["direct"]), summarize(runs["proxy"])
            for name, r in (("direct", direct), ("proxy", proxied)):
                print(f"{concurrency:>4} {name:>6} {int(r['n']):>4} {r['p50']:>7.3f} {r['p95']:>7.3f} {r['p99']:>7.3f} "
                      f"{r['tok_s']:>8.1f} {r['err']:>5.1%}")
            print(f"{concurrency:>4} {'ratio':>6} {'':>4} {proxied['p50'] / direct['p50']:>7.3f} "
                  f"{proxied['p95'] / direct['p95']:>7.3f} {proxied['p99'] / direct['p99']:>7.3f} "
                  f"{proxied['tok_s'] / direct['tok_s']:>8.3f}   (proxy/direct)")
        spans = await store.query_spans(rollout.rollout_id)
        ok = sum(1 for s in spans if s.status == "ok" and s.attributes.get("response_token_ids"))
        print(f"\nspans recorded for the proxied calls: {len(spans)} ({ok} ok with token ids; expected "
              f"{args.warmup + args.rounds * sum(counts)})")
    finally:
        proxy.terminate()
        proxy.wait(timeout=15)
        await store.close()
        store_server.stop_thread()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.vllm_url:
        model = httpx.get(args.vllm_url.rstrip("/") + "/models", timeout=10).json()["data"][0]["id"]
        asyncio.run(benchmark(args, args.vllm_url, model))
        return 0
    from agentlightning.models import default_model_path

    with VLLMServer(args.model or default_model_path(), served_model_name="policy",
                    extra_args=["--max-model-len", "2048", "--max-num-seqs", "64"]) as server:
        print(f"vLLM ready at {server.base_url} (log {server.log_path})", flush=True)
        asyncio.run(benchmark(args, server.base_url, server.model_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
