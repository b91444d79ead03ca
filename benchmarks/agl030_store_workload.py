"""The store_bench workload on Agent Lightning 0.3.0's HTTP store: the baseline of `benchmarks/store_bench.py`.

Runs in a Python that has `agentlightning==0.3.0` from PyPI (not this project: the two packages share a name), e.g.
`python -m venv /tmp/agl030 && /tmp/agl030/bin/pip install agentlightning==0.3.0`, then
`/tmp/agl030/bin/python benchmarks/agl030_store_workload.py [--rollouts 300] [--workers 8]` (run from outside this
checkout, so that `import agentlightning` finds 0.3.0). store_bench.py runs it for you with `--agl-python`.

The same steps per rollout as store_bench.py: enqueue → dequeue → running → 10 spans of 256 prompt + 128 response
token ids → succeeded → query its spans. The server is 0.3.0's own `agl store --backend memory` in a process of its
own (as ours is measured); its span writes take a sequence id from the store first, as its tracer does
(`get_next_span_sequence_id`, then `add_span`). Prints `seconds <median>`.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from agentlightning.store.client_server import LightningStoreClient

import agentlightning
from agentlightning.types import Span

if not agentlightning.__file__ or Path(__file__).resolve().parents[1] in Path(agentlightning.__file__).parents:
    raise SystemExit("this script measures Agent Lightning 0.3.0: run it with a Python that has it installed, "
                     "from outside this checkout")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _span(rollout_id: str, attempt_id: str, sequence_id: int, k: int) -> Span:
    now = time.time()
    return Span.model_validate({
        "rollout_id": rollout_id, "attempt_id": attempt_id, "sequence_id": sequence_id, "trace_id": f"{k:032x}",
        "span_id": f"{k:016x}", "parent_id": None, "name": "llm.call", "status": {"status_code": "OK"},
        "attributes": {"prompt_token_ids": list(range(256)), "response_token_ids": list(range(128))},
        "events": [], "links": [], "start_time": now, "end_time": now, "context": None, "parent": None,
        "resource": {"attributes": {}, "schema_url": ""}})


async def workload(url: str, rollouts: int, workers: int) -> float:
    store = LightningStoreClient(url)
    started = time.perf_counter()
    for i in range(rollouts):
        await store.enqueue_rollout(input={"i": i})

    async def worker(name: str) -> None:
        while (claimed := await store.dequeue_rollout(worker_id=name)) is not None:
            rid, aid = claimed.rollout_id, claimed.attempt.attempt_id
            await store.update_attempt(rid, aid, status="running")
            for k in range(10):
                sequence_id = await store.get_next_span_sequence_id(rid, aid)
                await store.add_span(_span(rid, aid, sequence_id, k))
            await store.update_attempt(rid, aid, status="succeeded")
            spans = await store.query_spans(rid)
            assert len(spans) == 10, f"rollout {rid} has {len(spans)} spans"

    await asyncio.gather(*(worker(f"w{w}") for w in range(workers)))
    elapsed = time.perf_counter() - started
    await store.close()
    return elapsed


def one(rollouts: int, workers: int) -> float:
    port = _free_port()
    agl = Path(sys.executable).with_name("agl")
    server = subprocess.Popen([str(agl), "store", "--backend", "memory", "--port", str(port), "--log-level", "ERROR"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import urllib.request

        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/agl/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("Agent Lightning 0.3.0's `agl store` did not start") from None
                time.sleep(0.5)
        return asyncio.run(workload(f"http://127.0.0.1:{port}", rollouts, workers))
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=300)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times = [one(args.rollouts, args.workers) for _ in range(args.repeats)]
    print(f"runs {' '.join(f'{t:.2f}' for t in times)}")
    print(f"seconds {statistics.median(times):.3f}")


if __name__ == "__main__":
    main()
