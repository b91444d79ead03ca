"""Store throughput: the same workload on every backend, in one run, with ratios to the in-memory store.

Workload per rollout (what a training step does to the store): enqueue → dequeue (claim + attempt) → mark running →
10 × add_span (what the proxy/tracer writes) → mark succeeded; `--workers` concurrent workers share the queue.
Store calls per rollout: 1 + 1 + 1 + 10 + 1 = 14.

Each backend runs twice: with an idempotency key on every write (what `LightningStoreClient` always sends, so that
retries are safe) and without (the baseline; over HTTP a client subclass that drops its keys), and the last column
is the cost of the keys as a throughput ratio, keyed / keyless, measured in the same run.

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
from agentlightning.store.idempotency import new_key
from agentlightning.types import Span

CALLS_PER_ROLLOUT = 14


class _KeylessClient(LightningStoreClient):
    """The baseline of the keys' cost: the HTTP client with its idempotency keys dropped (not safe to retry)."""

    async def _call(self, *args, key: str | None = None, **kwargs):  # noqa: ANN002, ANN003, ANN202
        return await super()._call(*args, **kwargs)


@asynccontextmanager
async def open_backend(kind: str, folder: Path, keys: bool = True) -> AsyncIterator[LightningStore]:
    inner: LightningStore = InMemoryLightningStore() if kind.endswith("memory") else SqliteLightningStore(
        folder / f"{kind}.sqlite")
    if not kind.startswith("http"):
        yield inner
        await inner.close()
        return
    server = LightningStoreServer(inner)
    server.start_in_thread()  # own loop/thread: the client's requests really cross the loopback
    client = (LightningStoreClient if keys else _KeylessClient)(server.url)
    try:
        yield client
    finally:
        await client.close()
        server.stop_thread()


async def workload(store: LightningStore, rollouts: int, workers: int, keys: bool = True) -> float:
    def key() -> str | None:
        return new_key() if keys else None

    started = time.perf_counter()
    for i in range(rollouts):
        await store.enqueue_rollout({"i": i}, idempotency_key=key())

    async def worker(name: str) -> None:
        while (claimed := await store.dequeue_rollout(name, idempotency_key=key())) is not None:
            rid, aid = claimed.rollout_id, claimed.attempt.attempt_id
            await store.update_attempt(rid, aid, status="running", idempotency_key=key())
            for k in range(10):
                await store.add_span(Span(rollout_id=rid, attempt_id=aid, span_id=f"s{k}", name="llm.call",
                                          attributes={"prompt_token_ids": list(range(64)),
                                                      "response_token_ids": list(range(32))}),
                                     idempotency_key=key())
            await store.update_attempt(rid, aid, status="succeeded", idempotency_key=key())

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

    results: dict[tuple[str, bool], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.backends.split(","):
            for keys in (False, True):
                times = []
                for r in range(args.repeats):
                    async def one(kind: str = kind, r: int = r, keys: bool = keys) -> float:
                        folder = Path(tmp) / f"{kind}-{keys}-{r}"
                        folder.mkdir()
                        async with open_backend(kind, folder, keys) as store:
                            return await workload(store, args.rollouts, args.workers, keys)

                    times.append(asyncio.run(one()))
                results[(kind, keys)] = statistics.median(times)

    base = results.get(("memory", True))
    ops: Callable[[float], float] = lambda seconds: args.rollouts * CALLS_PER_ROLLOUT / seconds  # noqa: E731
    print(f"store_bench: {args.rollouts} rollouts x {CALLS_PER_ROLLOUT} calls, {args.workers} workers, "
          f"median of {args.repeats}; idempotency keys on every write")
    print(f"{'backend':<12} {'seconds':>8} {'ops/s':>10} {'rollouts/s':>11} {'ratio_vs_memory':>16} "
          f"{'keyed/keyless':>14}")
    for kind in args.backends.split(","):
        seconds, keyless = results[(kind, True)], results[(kind, False)]
        ratio = f"{ops(seconds) / ops(base):.3f}" if base else "n/a"
        print(f"{kind:<12} {seconds:>8.2f} {ops(seconds):>10.0f} {args.rollouts / seconds:>11.1f} {ratio:>16} "
              f"{keyless / seconds:>14.3f}")


if __name__ == "__main__":
    main()
