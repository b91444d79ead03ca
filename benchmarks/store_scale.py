"""Store at cluster scale, by simulation: many runners' worth of HTTP clients against one store server.

Where this sits: measures the store server (`agentlightning/store/server.py`) as a cluster uses it. Each simulated
runner is what a runner process holds: its own `LightningStoreClient` (own connection pool) and `SpanWriter`, and
`--episodes` concurrent episodes; each episode long-polls a dequeue, marks the attempt running, writes 10 spans of
256 + 128 token ids (one model call each: every span awaited, group-committed with the runner's other episodes),
marks it succeeded. The trainer (this process) enqueues all rollouts in batches of 64 and waits for them. Runners
are spread over `--processes` client processes (async clients, not 64 interpreters: this machine has 2 cores).

Per level (number of simulated runners) it prints rollouts/s, store requests/s, request latency p50/p99 over the
runners' requests (dequeues left out: they are long polls that wait on purpose), errors (calls that raised), the
store server process's CPU use (one core = 100 %: a Python server cannot use more than one, so near 100 % it is
saturated), and the requests/s that one core of server CPU would serve at this level's cost per request (requests/s
÷ CPU share: where the server saturates). On this 2-core machine the client processes share the cores with the
server, so the measured rates are a floor; the server's CPU share says which side limits.

Run: `.venv/bin/python benchmarks/store_scale.py [--runners 8,16,32,64] [--episodes 2] [--rollouts 400]
      [--processes 4] [--backend memory|sqlite]`
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from agentlightning.store import LightningStoreClient
from agentlightning.store.span_writer import SpanWriter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_bench import SPANS_PER_ROLLOUT, _span  # noqa: E402

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]


class _TimedClient(LightningStoreClient):
    """The store client, timing each call (retries included) and counting the calls that raised."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.latencies: list[float] = []
        self.errors = 0

    async def _call(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = await super()._call(method, path, *args, **kwargs)
        except Exception:
            self.errors += 1
            raise
        if path != "/rollouts/dequeue":  # (a long poll waits on purpose: not a latency)
            self.latencies.append(time.perf_counter() - started)
        return result


async def _runner(url: str, name: str, episodes: int, stop_after: float) -> tuple[list[float], int, int]:
    client = _TimedClient(url)
    writer = SpanWriter(client)
    done = 0

    async def episode(k: int) -> None:
        nonlocal done
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < stop_after:
            try:
                claimed = await client.dequeue_rollout(f"{name}-{k}", wait_seconds=1.0)
            except Exception:  # noqa: BLE001 - counted in client.errors
                continue
            if claimed is None:
                continue
            rid, aid = claimed.rollout_id, claimed.attempt.attempt_id
            try:
                await client.update_attempt(rid, aid, status="running")
                for i in range(SPANS_PER_ROLLOUT):
                    await writer.write([_span(rid, aid, i)])
                await client.update_attempt(rid, aid, status="succeeded")
                done += 1
            except Exception:  # noqa: BLE001 - counted in client.errors
                pass
            idle_since = time.monotonic()

    await asyncio.gather(*(episode(k) for k in range(episodes)))
    await client.close()
    return client.latencies, client.errors, done


def _client_process(url: str, names: list[str], episodes: int, stop_after: float, out: Any) -> None:
    async def run() -> list[tuple[list[float], int, int]]:
        return await asyncio.gather(*(_runner(url, n, episodes, stop_after) for n in names))

    results = asyncio.run(run())
    out.put(([x for r in results for x in r[0]], sum(r[1] for r in results), sum(r[2] for r in results)))


async def _trainer(url: str, rollouts: int) -> tuple[float, int]:
    client = LightningStoreClient(url, timeout=600)
    started = time.perf_counter()
    ids: list[str] = []
    for first in range(0, rollouts, 64):
        batch = await client.enqueue_many_rollouts([{"input": {"i": i}} for i in range(first, min(rollouts,
                                                                                                   first + 64))])
        ids += [r.rollout_id for r in batch]
    finished = await client.wait_for_rollouts(ids, timeout=1800)
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed, sum(r.status == "succeeded" for r in finished)


def level(url: str, server_pid: int, runners: int, episodes: int, rollouts: int, processes: int) -> dict[str, float]:
    """One load level: `runners` simulated runners; returns what the table prints."""
    names = [f"r{i}" for i in range(runners)]
    queue: Any = mp.get_context("spawn").Queue()
    procs = [mp.get_context("spawn").Process(target=_client_process, args=(url, names[p::processes], episodes, 3.0,
                                                                            queue)) for p in range(processes)]
    server = psutil.Process(server_pid)
    for proc in procs:
        proc.start()
    time.sleep(2.0)  # the client processes import and connect before the clock starts
    cpu_before = sum(server.cpu_times()[:2])
    elapsed, succeeded = asyncio.run(_trainer(url, rollouts))
    cpu = (sum(server.cpu_times()[:2]) - cpu_before) / elapsed
    latencies: list[float] = []
    errors = 0
    for _ in procs:
        lat, err, _done = queue.get(timeout=600)
        latencies += lat
        errors += err
    for proc in procs:
        proc.join(timeout=60)
    latencies.sort()
    return {"runners": runners, "rollouts/s": succeeded / elapsed, "requests/s": len(latencies) / elapsed,
            "p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * latencies[int(0.99 * len(latencies))],
            "errors": errors, "server_cpu": 100 * cpu, "succeeded": succeeded, "capacity": len(latencies) / elapsed / cpu,
            "requests_per_rollout": len(latencies) / max(1, succeeded)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runners", default="8,16,32,64", help="comma-separated numbers of simulated runners")
    parser.add_argument("--episodes", type=int, default=4, help="concurrent episodes per runner")
    parser.add_argument("--rollouts", type=int, default=400, help="rollouts per level")
    parser.add_argument("--processes", type=int, default=4, help="client processes the runners are spread over")
    parser.add_argument("--backend", choices=["memory", "sqlite"], default="memory")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for runners in (int(r) for r in args.runners.split(",")):
            path = Path(tmp) / f"store-{runners}.sqlite"
            server = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "store_bench.py"), "--serve",
                                       args.backend, "--path", str(path)], stdout=subprocess.PIPE, text=True)
            try:
                assert server.stdout is not None
                line = server.stdout.readline()
                url = line.split("listening on ")[1].split()[0]
                rows.append(level(url, server.pid, runners, args.episodes, args.rollouts,
                                  min(args.processes, runners)))
            finally:
                server.terminate()
                server.wait(timeout=30)
    print(f"store_scale: http-{args.backend}, {args.rollouts} rollouts per level, {args.episodes} episodes per "
          f"runner, runners spread over {args.processes} client processes, {psutil.cpu_count()} cores")
    print(f"{'runners':>7} {'episodes':>8} {'rollouts/s':>10} {'requests/s':>10} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'errors':>6} {'server CPU %':>12} {'req/s at 1 core':>15}")
    for row in rows:
        print(f"{row['runners']:>7} {row['runners'] * args.episodes:>8} {row['rollouts/s']:>10.1f} "
              f"{row['requests/s']:>10.0f} {row['p50_ms']:>7.1f} {row['p99_ms']:>7.1f} {row['errors']:>6} "
              f"{row['server_cpu']:>12.0f} {row['capacity']:>15.0f}")


if __name__ == "__main__":
    main()
