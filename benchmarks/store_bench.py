"""Store throughput: the issue-#17 workload on every backend, in one run, with ratios to the in-memory store and to
Agent Lightning 0.3.0's HTTP store measured the same way.

Workload per rollout (what one episode does to the store): enqueue → dequeue (claim + attempt) → mark running →
10 spans of 256 prompt + 128 response token ids → mark succeeded → query its spans. `--workers` concurrent workers
(asyncio tasks sharing one client, as a runner's episodes do) share the queue; the rollouts are enqueued first.
Spans go the way the LLM proxy and the tracer write them: each one awaited on its own (a model call is answered only
once its span is stored) through the store's `SpanWriter`, which sends what concurrent episodes hand it as one
`add_spans` request (`store/span_writer.py`).

Backends: `memory`, `sqlite` (in this process); `http-memory`, `http-sqlite` (the store served by
`agl store`'s code path in a process of its own, the client here: no shared GIL). `--preload N` also measures each
backend with N finished rollouts (10 spans each) already stored, as the ratio to the empty store.

Resolution: each measurement opens a fresh store and runs the workload on it back to back until `--min-seconds`
(default 3 s) have passed, and reports seconds per workload; empty and preloaded measurements alternate. One pass
takes ~0.15 s on the in-process memory store, ~0.7 s on SQLite and 1-3 s over HTTP, where a few ms of garbage
collection, allocator or page-cache state decide a ratio (single passes of the empty SQLite store: 279-438/s).

Baseline: with `--agl-python PY` (a Python that has `agentlightning==0.3.0` from PyPI, e.g. a venv made by
`python -m venv /tmp/agl030 && /tmp/agl030/bin/pip install agentlightning==0.3.0`), the same workload runs against
Agent Lightning 0.3.0's `agl store --backend memory` in its own process (`benchmarks/agl030_store_workload.py`; its
span writes each fetch a sequence id first, as its tracer does), and the last column is our rollouts/s over its.

Run: `.venv/bin/python benchmarks/store_bench.py [--rollouts 300] [--workers 8,64] [--preload 100000]
      [--min-seconds 3] [--agl-python /tmp/agl030/bin/python]`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from agentlightning.store import InMemoryLightningStore, LightningStore, LightningStoreClient, SqliteLightningStore
from agentlightning.store.span_writer import SpanWriter
from agentlightning.types import Span

__all__ = ["main", "preload", "workload"]

ROOT = Path(__file__).resolve().parents[1]
SPANS_PER_ROLLOUT, PROMPT_TOKENS, RESPONSE_TOKENS = 10, 256, 128


def _span(rollout_id: str, attempt_id: str, k: int) -> Span:
    return Span(rollout_id=rollout_id, attempt_id=attempt_id, span_id=f"s{k}", name="llm.call",
                start_time=time.time(), end_time=time.time(),
                attributes={"prompt_token_ids": list(range(PROMPT_TOKENS)),
                            "response_token_ids": list(range(RESPONSE_TOKENS))})


async def workload(store: LightningStore, rollouts: int, workers: int) -> float:
    """Seconds the workload takes on `store` (checked: every rollout succeeded with its 10 spans)."""
    writer = SpanWriter(store)
    started = time.perf_counter()
    ids = [(await store.enqueue_rollout({"i": i})).rollout_id for i in range(rollouts)]

    async def worker(name: str) -> None:
        while (claimed := await store.dequeue_rollout(name)) is not None:
            rid, aid = claimed.rollout_id, claimed.attempt.attempt_id
            await store.update_attempt(rid, aid, status="running")
            for k in range(SPANS_PER_ROLLOUT):
                await writer.write([_span(rid, aid, k)])
            await store.update_attempt(rid, aid, status="succeeded")
            spans = await store.query_spans(rid)
            assert len(spans) == SPANS_PER_ROLLOUT, f"rollout {rid} has {len(spans)} spans"

    await asyncio.gather(*(worker(f"w{w}") for w in range(workers)))
    elapsed = time.perf_counter() - started
    done = await store.query_rollouts(rollout_ids=ids)
    assert all(r.status == "succeeded" for r in done), "not every rollout succeeded"
    return elapsed


async def _passes(store: LightningStore, rollouts: int, workers: int, min_seconds: float) -> tuple[float, int]:
    """(seconds per workload, passes): the workload run back to back on `store` until `min_seconds` have passed."""
    total, count = 0.0, 0
    while count == 0 or total < min_seconds:
        total += await workload(store, rollouts, workers)
        count += 1
    return total / count, count


async def preload(store: LightningStore, count: int) -> None:
    """`count` finished rollouts with their spans, as a long run leaves them (enqueued in chunks)."""
    for first in range(0, count, 1000):
        chunk = await store.enqueue_many_rollouts([{"input": {"old": i}} for i in range(first, min(count, first + 1000))])
        for _ in chunk:
            claimed = await store.dequeue_rollout("preload")
            assert claimed is not None
            rid, aid = claimed.rollout_id, claimed.attempt.attempt_id
            await store.add_spans([_span(rid, aid, k) for k in range(SPANS_PER_ROLLOUT)])
            await store.update_attempt(rid, aid, status="succeeded")


def _settle() -> None:
    """After a preload, one full garbage collection, as a long-running store has had: Python runs one whenever the
    objects that survived since the last grow by 25 %, so its cost per stored object is constant, but right after
    loading 100,000 rollouts the first one (a walk over millions of objects) would land inside the measurement."""
    gc.collect()


def _open_store(kind: str, path: Path) -> LightningStore:
    return InMemoryLightningStore() if kind == "memory" else SqliteLightningStore(path)


async def _sqlite_template(folder: Path, count: int) -> Path:
    """A SQLite store file with `count` finished rollouts, made once per run and copied for each measurement."""
    template = folder / f"preloaded-{count}.sqlite"
    if not template.exists():
        store = SqliteLightningStore(template)
        await preload(store, count)
        await store.close()
    return template


@contextlib.asynccontextmanager
async def open_backend(kind: str, folder: Path, preloaded: int) -> AsyncIterator[LightningStore]:
    inner_kind = kind.removeprefix("http-")
    if inner_kind == "sqlite" and preloaded:
        for suffix in ("", "-wal", "-shm"):
            source = (await _sqlite_template(folder.parent, preloaded)).with_name(f"preloaded-{preloaded}.sqlite{suffix}")
            if source.exists():
                shutil.copyfile(source, folder / f"store.sqlite{suffix}")
        # a store that holds 100,000 rollouts wrote them over hours, and the OS flushed them long ago: without this,
        # the store's first checkpoint fsync would write out the whole fresh copy (GBs) inside the measurement
        os.sync()
        preloaded = 0
    if not kind.startswith("http-"):
        store = _open_store(inner_kind, folder / "store.sqlite")
        await preload(store, preloaded)
        _settle()
        try:
            yield store
        finally:
            await store.close()
        return
    # the server in its own process, through the same code path as `agl store`
    server = subprocess.Popen([sys.executable, __file__, "--serve", inner_kind, "--path", str(folder / "store.sqlite"),
                               "--preload", str(preloaded)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if "listening on " not in line:
            raise RuntimeError(f"the store server did not start: {line!r}")
        client = LightningStoreClient(line.split("listening on ")[1].split()[0])
        try:
            yield client
        finally:
            await client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def _serve(kind: str, path: Path, preloaded: int) -> None:
    from agentlightning.cli.store import serve_forever

    store = _open_store(kind, path)
    asyncio.run(preload(store, preloaded))
    _settle()
    serve_forever(store, "127.0.0.1", 0, None, "store_bench: listening on {url}")


def _agl030(python: str, rollouts: int, workers: int, repeats: int) -> float | None:
    """Median seconds of the workload on Agent Lightning 0.3.0 (None when it could not run; the reason is printed)."""
    script = ROOT / "benchmarks" / "agl030_store_workload.py"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # (it would import this checkout instead)
    result = subprocess.run([python, str(script), "--rollouts", str(rollouts), "--workers", str(workers),
                             "--repeats", str(repeats)], capture_output=True, text=True, cwd="/", timeout=3600, env=env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("seconds ")]
    if result.returncode != 0 or not lines:
        print(f"(Agent Lightning 0.3.0 baseline failed, exit {result.returncode}: {result.stderr[-500:]})")
        return None
    return float(lines[-1].split()[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=300, help="rollouts per measurement")
    parser.add_argument("--workers", default="8,64", help="comma-separated worker counts (concurrent episodes)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the median is reported")
    parser.add_argument("--backends", default="memory,sqlite,http-memory,http-sqlite")
    parser.add_argument("--preload", type=int, default=0, help="also measure with this many finished rollouts stored")
    parser.add_argument("--min-seconds", type=float, default=3.0,
                        help="run the workload back to back on each fresh store until this long (resolution)")
    parser.add_argument("--agl-python", help="a Python with agentlightning==0.3.0 installed: measure it as baseline")
    parser.add_argument("--serve", choices=["memory", "sqlite"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args.serve, args.path, args.preload)
        return

    kinds = args.backends.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (int(w) for w in args.workers.split(",")):
            results: dict[tuple[str, int], float] = {}
            passes: dict[str, int] = {}
            for kind in kinds:
                times: dict[int, list[float]] = {preloaded: [] for preloaded in sorted({0, args.preload})}
                # empty and preloaded alternate (A B A B ...), so drift in the machine or the process hits both alike
                for r in range(args.repeats):
                    for preloaded in times:
                        folder = Path(tmp) / f"{kind}-{workers}-{preloaded}-{r}"
                        folder.mkdir()

                        async def one(kind: str = kind, folder: Path = folder, preloaded: int = preloaded,
                                      workers: int = workers) -> tuple[float, int]:
                            async with open_backend(kind, folder, preloaded) as store:
                                return await _passes(store, args.rollouts, workers, args.min_seconds)

                        seconds, count = asyncio.run(one())
                        times[preloaded].append(seconds)
                        passes[kind] = max(passes.get(kind, 0), count)
                results.update({(kind, preloaded): statistics.median(t) for preloaded, t in times.items()})
            agl = _agl030(args.agl_python, args.rollouts, workers, args.repeats) if args.agl_python else None
            rows.append((workers, results, passes, agl))

    print(f"store_bench: {args.rollouts} rollouts x (enqueue, dequeue, running, {SPANS_PER_ROLLOUT} spans of "
          f"{PROMPT_TOKENS}+{RESPONSE_TOKENS} token ids, succeeded, query spans), median of {args.repeats}, "
          f"{os.cpu_count()} cores; each measurement runs the workload back to back on a fresh store for >= "
          f"{args.min_seconds:g} s (passes) and reports seconds per workload")
    header = f"{'workers':>7} {'backend':<12} {'passes':>6} {'seconds':>8} {'rollouts/s':>11} {'vs memory':>10}"
    if args.preload:
        header += f" {f'with {args.preload} stored':>22}"
    print(header + f" {'vs AGL 0.3.0 HTTP':>18}")
    for workers, results, passes, agl in rows:
        base = results.get(("memory", 0))
        for kind in kinds:
            seconds = results[(kind, 0)]
            line = (f"{workers:>7} {kind:<12} {passes[kind]:>6} {seconds:>8.2f} {args.rollouts / seconds:>11.1f} "
                    f"{(base / seconds if base else float('nan')):>10.3f}")
            if args.preload:
                loaded = results[(kind, args.preload)]
                line += f" {f'{args.rollouts / loaded:.1f}/s = {seconds / loaded:.2f}x':>22}"
            line += f" {(agl / seconds if agl else float('nan')):>17.1f}x"
            print(line)
        if agl:
            print(f"{workers:>7} {'AGL 0.3.0 http-memory':<19} {agl:>8.2f} {args.rollouts / agl:>11.1f}")


if __name__ == "__main__":
    main()
