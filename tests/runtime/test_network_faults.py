"""A flaky network between every store client and the store never kills a runner, loses a rollout, or doubles a span.

Set-up (real sockets throughout): the store server (memory or SQLite backend) behind `FaultyProxy`, a TCP proxy that
faults 25 % of requests with a fixed seed — a reset before the request reaches the server, a reset after the server
applied it, or a cut in the middle of the answer. Two runner processes (8 episodes at once each) and the real LLM
proxy (recording `llm.call` spans) talk to the store only through it; the agents' model calls go through the LLM
proxy to a fake upstream. 200 rollouts of two model calls each.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agentlightning import LLM, rollout
from agentlightning.clients import async_openai
from agentlightning.proxy import LLMProxy
from agentlightning.runner import RunnerConfig
from agentlightning.runner_pool import RunnerPool
from agentlightning.store import (
    InMemoryLightningStore,
    LightningStoreClient,
    LightningStoreServer,
    SqliteLightningStore,
)
from agentlightning.types import RolloutConfig

N_ROLLOUTS = 200
CALLS = 2


@rollout
async def two_calls(task: dict, llm: LLM) -> float:
    client = async_openai(llm)
    for turn in range(CALLS):
        await client.chat.completions.create(model=llm.model, max_tokens=4,
                                             messages=[{"role": "user", "content": f"task {task['i']} turn {turn}"}])
    return float(task["i"] % 2)  # a reward its task implies (the chaos soak checks it)


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_runners_survive_a_faulty_network(backend: str, tmp_path: Path) -> None:
    from tests.serving.fakes import FakeUpstream
    from tests.store.faults import FaultyProxy

    inner = InMemoryLightningStore() if backend == "memory" else SqliteLightningStore(tmp_path / "store.sqlite")
    server = LightningStoreServer(inner)
    server.start_in_thread()
    faulty = FaultyProxy(server.port, rate=0.25, seed=20261206).start()
    clean = LightningStoreClient(server.url)  # the test's own view of the store, past the faults
    upstream = FakeUpstream()
    await upstream.start()
    proxy_store = LightningStoreClient(faulty.url)
    proxy = LLMProxy([upstream.url], proxy_store)
    proxy.start_in_thread()
    pool = None
    try:
        await clean.add_resources({"main_llm": proxy.as_resource(model="m")})
        config = RolloutConfig(unresponsive_seconds=30, max_attempts=2)  # a lost attempt would show as a 2nd one
        ids = [r.rollout_id for r in await clean.enqueue_many_rollouts(
            [{"input": {"i": i}, "config": config} for i in range(N_ROLLOUTS)])]
        pool = RunnerPool(two_calls, faulty.url, n_runners=2, log_dir=tmp_path / "runners",
                          config=RunnerConfig(max_concurrency=8, poll_seconds=1.0)).start()
        pids = pool.pids()
        started, deadline = time.monotonic(), time.monotonic() + 180
        while True:
            pool.check()
            done = await clean.query_rollouts(status=["succeeded", "failed", "cancelled"], rollout_ids=ids)
            if len(done) == N_ROLLOUTS or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        elapsed = time.monotonic() - started
        assert pool.pids() == pids and pool.restarts == 0, "a runner process exited"
        assert all(proc.poll() is None for proc, _ in pool._procs.values())
        faulty.enabled = False

        rollouts = await clean.query_rollouts(rollout_ids=ids)
        assert [r.status for r in rollouts].count("succeeded") == N_ROLLOUTS, \
            {r.status for r in rollouts if r.status != "succeeded"}
        assert all(r.num_attempts == 1 for r in rollouts), "an attempt beyond the first: the transport was all we broke"
        for rollout_id in ids:
            (attempt,) = await clean.query_attempts(rollout_id)
            assert attempt.status == "succeeded"
            spans = await clean.query_spans(rollout_id)
            calls = [s for s in spans if s.name == "llm.call"]
            assert len(calls) == CALLS and all(s.status == "ok" for s in calls), [s.name for s in spans]
            assert len({s.span_id for s in spans}) == len(spans), "a span was stored twice"
            sequence = [s.sequence_id for s in spans]
            assert sequence == sorted(set(sequence)), f"spans out of order or duplicated: {sequence}"
            assert [s.name for s in spans].count("agentlightning.reward") == 1
        logs = "\n".join(p.read_text() for p in (tmp_path / "runners").glob("*.log"))
        assert "could not record" not in logs and "a rollout ended with" not in logs, logs[-3000:]
        counts = faulty.counts
        assert counts["faulted"] >= 0.2 * counts["requests"], counts
        assert all(counts[kind] > 0 for kind in ("reset_before", "reset_after", "cut_answer")), counts
        print(f"\n[{backend}] {N_ROLLOUTS} rollouts in {elapsed:.1f} s over a faulty network: "
              f"{counts['requests']} store requests, {counts['faulted']} faulted "
              f"({counts['faulted'] / counts['requests']:.0%}: reset before {counts['reset_before']}, "
              f"reset after {counts['reset_after']}, cut answer {counts['cut_answer']}); "
              f"writes retried with their key {counts['retried_writes']}; LLM proxy's store client retried "
              f"{proxy_store.retries_made} times; runner restarts {pool.restarts}")
    finally:
        if pool is not None:
            pool.stop()
        proxy.stop_thread()
        await proxy_store.close()
        await upstream.stop()
        await clean.close()
        faulty.stop()
        server.stop_thread()
        await inner.close()
