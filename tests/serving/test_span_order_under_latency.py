"""The tracer never blocks a runner's event loop, and spans stay in true order, with a store 50 ms away.

One runner runs 16 episodes at once against a store server behind a relay that delays every request by 50 ms (a
store on another machine). Each episode makes 3 model calls through the real LLM proxy (to a fake upstream) and
records a message span after each. Shown:
- the event loop is never held for a store round trip: a 10 ms ticker on the runner's loop never waits 50 ms (a
  blocking span write, as the tracer once made for every span, holds the loop for at least the injected 50 ms);
- the episodes' model calls overlap (the upstream sees at least half of them at once);
- in every attempt each message sits between the call before it and the call after it, even when the upstream
  answers faster than the message's own write takes: the shared client waits for the attempt's ended spans before
  a call leaves (`agentlightning.tracer.settle_spans_before`).
"""

from __future__ import annotations

import asyncio
import gc
import time

from fakes import FakeUpstream

from agentlightning import langchain_handler, semconv
from agentlightning.agent import rollout
from agentlightning.clients import async_openai, warm_up
from agentlightning.emitter import emit_message
from agentlightning.proxy import LLMProxy
from agentlightning.runner import RunnerConfig, worker_loop
from agentlightning.store import InMemoryLightningStore, LightningStoreClient, LightningStoreServer
from agentlightning.types import LLM
from tests.store.faults import FaultyProxy

EPISODES, CALLS, LATENCY_S = 16, 3, 0.05
assert langchain_handler  # imported here: the tracer imports it on a runner's first episode (0.5 s, once)


@rollout
async def three_calls(task: dict, llm: LLM) -> float:
    client = async_openai(llm)
    for turn in range(CALLS):
        await client.chat.completions.create(model=llm.model, messages=[{"role": "user", "content": f"turn {turn}"}])
        emit_message(f"after call {turn}")
    return 1.0


async def _ticker(lags: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append(time.perf_counter() - before - 0.01)


async def _run(fake: FakeUpstream, delay_s: float) -> tuple[list[list[str]], list[float]]:
    """Run the 16 episodes; returns each attempt's call/message order and the loop's lags."""
    fake.delay_s = delay_s
    fake.max_in_flight = 0
    fake.requests.clear()
    inner = InMemoryLightningStore()
    server = LightningStoreServer(inner)
    server.start_in_thread()
    slow = FaultyProxy(server.port, rate=0.0, latency_s=LATENCY_S).start()
    runner_store = LightningStoreClient(slow.url)
    proxy_store = LightningStoreClient(server.url)  # the proxy lives beside the store (the trainer's process)
    proxy = LLMProxy([fake.url.removesuffix("/v1")], proxy_store)
    await proxy.start()
    try:
        await runner_store.add_resources({"main_llm": proxy.as_resource(model="fake-a")})
        rollouts = await runner_store.enqueue_many_rollouts([{"input": {"i": i}} for i in range(EPISODES)])
        config = RunnerConfig(poll_seconds=0.2, heartbeat_seconds=5.0, exit_when_idle_seconds=1.0,
                              max_concurrency=EPISODES)
        warm_up()  # openai's first-use imports, which the runner does at its start, before any episode
        gc.collect()  # the objects earlier tests left in this process: not scanned by the collector during the run
        gc.freeze()  # (a full collection over them takes ~100 ms, which is not what this test measures)
        lags: list[float] = []
        stop = asyncio.Event()
        ticker = asyncio.create_task(_ticker(lags, stop))
        assert await worker_loop(runner_store, three_calls, "w0", config=config) == EPISODES
        stop.set()
        await ticker
        assert len(fake.requests) == EPISODES * CALLS
        orders = []
        for r in rollouts:
            assert (await inner.get_rollout_by_id(r.rollout_id)).status == "succeeded"
            spans = await inner.query_spans(r.rollout_id)
            assert [s.sequence_id for s in spans] == list(range(1, len(spans) + 1))
            orders.append([("call" if s.name == semconv.LLM_CALL else s.attributes.get("message"))
                           for s in spans if s.name in (semconv.LLM_CALL, semconv.MESSAGE)])
        return orders, lags
    finally:
        gc.unfreeze()
        await proxy.stop()
        await runner_store.close()
        await proxy_store.close()
        slow.stop()
        server.stop_thread()


EXPECTED = [x for turn in range(CALLS) for x in ("call", f"after call {turn}")]


async def test_sixteen_episodes_overlap_and_the_loop_is_never_held_by_the_store(fake: FakeUpstream) -> None:
    orders, lags = await _run(fake, delay_s=0.3)
    assert fake.max_in_flight >= EPISODES // 2, f"the model calls did not overlap: {fake.max_in_flight} at once"
    assert max(lags) < LATENCY_S, f"the runner's loop was held {max(lags) * 1000:.0f} ms (store latency 50 ms)"
    assert all(order == EXPECTED for order in orders), orders


async def test_spans_stay_between_their_calls_when_the_model_is_faster_than_the_store(fake: FakeUpstream) -> None:
    orders, _ = await _run(fake, delay_s=0.005)
    assert all(order == EXPECTED for order in orders), [o for o in orders if o != EXPECTED]
