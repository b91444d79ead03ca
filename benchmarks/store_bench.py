"""Store throughput: the same workload on every backend, in one run, with ratios to the in-memory store.

Workload per rollout (what a training step does to the store): enqueue → dequeue (claim + attempt) → mark running →
10 × add_span (what the proxy/tracer writes) → mark succeeded; `--workers` concurrent workers share the queue.
Store calls per rollout: 1 + 1 + 1 + 10 + 1 = 14.

Run: `.venv/bin/python benchmarks/store_bench.py [--rollouts 300] [--workers 8]`
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from agentlightning.store import (
    InMemoryLightningStore,
    LightningStore,
    LightningStoreClient,
    LightningStoreServer,
    SqliteLightningStore,
)
from agentlightning.types import Span

CALLS_PER_ROLLOUT = 14


@asynccontextmanager
async def open_backend(kind: str, folder: Path) -> AsyncIterator[LightningStore]:
    inner: LightningStore = InMemoryLightningStore() if kind.endswith("memory") else SqliteLightningStore(
        folder / f"{kind}.sqlite")
    if not kind.startswith("http"):
        yield inner
        await inner.close()
        return
    server = LightningStoreServer(inner)
    server.start_in_thread()  # own loop/thread: the client's requests really cross the loopback
    client = LightningStoreClient(server.url)
    try:
        yield client
    finally:
        await client.close()
        server.stop_thread()


async def workload(store: LightningStore, rollouts: int, workers: int) -> float:
    started = time.perf_counter()
    for i in range(rollouts):
        await store.enqueue_rollout({"i": i})

    async def worker(name: str) -> None:
        while (claimed := await store.dequeue_rollout(name)) is not None:
            rid, aid = claimed.rollout_id, claimed.attempt.attempt_id
            await store.update_attempt(rid, aid, status="running")
            for k in range(10):
                await store.add_span(Span(rollout_id=rid, attempt_id=aid, span_id=f"s{k}", name="llm.call",
                                          attributes={"prompt_token_ids": list(range(64)),
                                                      "response_token_ids": list(range(32))}))
            await store.update_attempt(rid, aid, status="succeeded")

    await asyncio.gather(*(worker(f"w{w}") for w in range(workers)))
    elapsed = time.perf_counter() - started
    done = await store.query_rollouts(status=["succeeded"])
    assert len(done) == rollouts, f"only {len(done)} of {rollouts} rollouts succeeded"
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=300, help="rollouts per backend")
    parser.add_argument("--workers", type=int, default=8, help="concurrent workers (asyncio tasks)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per backend; the median is reported")
    parser.add_argument("--backends", default="memory,sqlite,http-memory,http-sqlite")
    args = parser.parse_args(argv)

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.backends.split(","):
            times = []
            for r in range(args.repeats):
                async def one(kind: str = kind, r: int = r) -> float:
                    folder = Path(tmp) / f"{kind}-{r}"
                    folder.mkdir()
                    async with open_backend(kind, folder) as store:
                        return await workload(store, args.rollouts, args.workers)

                times.append(asyncio.run(one()))
            results[kind] = statistics.median(times)

    base = results.get("memory")
    ops: Callable[[float], float] = lambda seconds: args.rollouts * CALLS_PER_ROLLOUT / seconds  # noqa: E731
    print(f"store_bench: {args.rollouts} rollouts x {CALLS_PER_ROLLOUT} calls, {args.workers} workers, "
          f"median of {args.repeats}")
    print(f"{'backend':<12} {'seconds':>8} {'ops/s':>10} {'rollouts/s':>11} {'ratio_vs_memory':>16}")
    for kind, seconds in results.items():
        ratio = f"{ops(seconds) / ops(base):.3f}" if base else "n/a"
        print(f"{kind:<12} {seconds:>8.2f} {ops(seconds):>10.0f} {args.rollouts / seconds:>11.1f} {ratio:>16}")


if __name__ == "__main__":
    main()
