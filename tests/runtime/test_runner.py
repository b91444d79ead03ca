"""Runtime without a model: agents, emitters, tracer spans, worker loops, process and Ray runner pools, faults."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import SpanProcessor

from agentlightning import semconv
from agentlightning.adapter import TraceAdapter
from agentlightning.agent import LitAgent, rollout
from agentlightning.emitter import emit_message, emit_metrics, emit_object, emit_reward
from agentlightning.runner import RunnerConfig, failure_cause, rollout_failure_cause, run_rollout, worker_loop
from agentlightning.runner_pool import RunnerPool
from agentlightning.store import (
    InMemoryLightningStore,
    LightningStoreClient,
    LightningStoreServer,
    StoreUnavailableError,
)
from agentlightning.tracer import Tracer
from agentlightning.types import LLM, RolloutConfig

FAST = RunnerConfig(poll_seconds=0.05, heartbeat_seconds=0.2, exit_when_idle_seconds=0.3)
LLM_RESOURCE = {"main_llm": LLM(endpoint="http://127.0.0.1:9/v1", model="unused")}


@rollout
def sync_agent(task: dict, llm: LLM) -> float:
    emit_message(f"solving {task['x']} with {llm.model}")
    return float(task["x"] % 2)


@rollout
async def async_agent(task: dict, llm: LLM, attempt) -> None:  # noqa: ANN001
    emit_object({"x": task["x"], "attempt": attempt.attempt.sequence_id}, name="answer")
    emit_reward({"exact": 1.0, "format": 0.5}, primary_key="exact")


class RaisingAgent(LitAgent):
    def training_rollout(self, task, resources, rollout):  # noqa: ANN001, ANN201
        raise ValueError(f"bad task {task}")


async def _store_with_resources() -> InMemoryLightningStore:
    store = InMemoryLightningStore()
    await store.add_resources(LLM_RESOURCE)
    return store


@pytest.mark.parametrize("agent", [sync_agent, async_agent])
async def test_worker_runs_agents_and_records_reward_spans(agent: LitAgent) -> None:
    store = await _store_with_resources()
    rollouts = await store.enqueue_many_rollouts([{"input": {"x": i}, "mode": "train"} for i in range(4)])
    assert await worker_loop(store, agent, "w0", config=FAST) == 4
    for r in rollouts:
        assert (await store.get_rollout_by_id(r.rollout_id)).status == "succeeded"
        spans = await store.query_spans(r.rollout_id)
        rewards = [s for s in spans if s.name == semconv.REWARD]
        assert len(rewards) == 1 and [s.sequence_id for s in spans] == list(range(1, len(spans) + 1))
        if agent is sync_agent:
            assert rewards[0].attributes["reward"] == r.input["x"] % 2
            assert spans[0].name == semconv.MESSAGE and "unused" in spans[0].attributes["message"]
        else:
            assert rewards[0].attributes["rewards"] == {"exact": 1.0, "format": 0.5}
            assert spans[0].attributes["json"] == {"x": r.input["x"], "attempt": 1}


async def test_worker_runs_rollouts_concurrently_each_traced_under_its_own_attempt() -> None:
    in_flight, peak = 0, 0

    @rollout
    async def slow_agent(task: dict, llm: LLM) -> float:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        emit_object({"x": task["x"]}, name="start")
        await asyncio.sleep(0.2)
        emit_object({"x": task["x"]}, name="end")
        in_flight -= 1
        return float(task["x"])

    store = await _store_with_resources()
    rollouts = await store.enqueue_many_rollouts([{"input": {"x": i}, "mode": "train"} for i in range(10)])
    config = RunnerConfig(poll_seconds=0.05, heartbeat_seconds=0.2, exit_when_idle_seconds=0.3, max_concurrency=4)
    assert await worker_loop(store, slow_agent, "w0", config=config) == 10
    assert peak == 4
    for r in rollouts:
        assert (await store.get_rollout_by_id(r.rollout_id)).status == "succeeded"
        spans = await store.query_spans(r.rollout_id)
        objects = [s.attributes["json"]["x"] for s in spans if s.name == semconv.OBJECT]
        rewards = [s.attributes["reward"] for s in spans if s.name == semconv.REWARD]
        assert objects == [r.input["x"]] * 2 and rewards == [float(r.input["x"])]


async def test_stopping_a_concurrent_worker_requeues_every_in_flight_rollout() -> None:
    @rollout
    async def hanging_agent(task: dict, llm: LLM) -> float:
        await asyncio.sleep(60)
        return 1.0

    store = await _store_with_resources()
    rollouts = await store.enqueue_many_rollouts([{"input": {"x": i}, "mode": "train"} for i in range(5)])
    stop = asyncio.Event()
    config = RunnerConfig(poll_seconds=0.05, heartbeat_seconds=0.2, max_concurrency=3)
    loop_task = asyncio.create_task(worker_loop(store, hanging_agent, "w0", stop, config))
    for _ in range(100):
        if len(await store.query_rollouts(status=["running"])) == 3:
            break
        await asyncio.sleep(0.05)
    stop.set()
    assert await asyncio.wait_for(loop_task, 5) == 0
    statuses = sorted([(await store.get_rollout_by_id(r.rollout_id)).status for r in rollouts])
    assert statuses == ["queuing", "queuing", "requeuing", "requeuing", "requeuing"]


async def test_idle_worker_long_polls_claims_at_once_and_stops_without_keeping_a_claim() -> None:
    """An idle worker waits inside the store (no polling traffic), starts a rollout as soon as one is enqueued, and
    on stop lets its pending dequeue answer and gives back whatever it claimed (over HTTP, where a dequeue cannot be
    cancelled safely)."""
    backend = await _store_with_resources()
    server = LightningStoreServer(backend)
    await server.start()
    client = LightningStoreClient(server.url)
    try:
        stop, started = asyncio.Event(), asyncio.Event()

        @rollout
        async def quick_agent(task: dict, llm: LLM) -> None:  # no spans: the tracer's sync store call would block
            started.set()                                      # this loop, which also serves the store here

        config = RunnerConfig(poll_seconds=1.0, heartbeat_seconds=0.2)
        loop_task = asyncio.create_task(worker_loop(client, quick_agent, "w0", stop, config))
        await asyncio.sleep(0.3)
        enqueued = asyncio.get_running_loop().time()
        await backend.enqueue_rollout({"x": 1}, mode="train")
        await asyncio.wait_for(started.wait(), timeout=5)
        assert asyncio.get_running_loop().time() - enqueued < 0.5, "claimed by the long poll, not by a later poll"

        await asyncio.sleep(0.2)  # the worker is waiting in its next dequeue
        stop.set()
        late = await backend.enqueue_rollout({"x": 2}, mode="train")  # lands in that pending dequeue
        assert await asyncio.wait_for(loop_task, 5) == 1
        assert (await backend.get_rollout_by_id(late.rollout_id)).status in ("queuing", "requeuing")
        assert await backend.dequeue_rollout("other") is not None, "the stopped worker must not keep the claim"
    finally:
        await client.close()
        await server.stop()


async def test_a_worker_that_exits_when_idle_does_not_spin_on_empty_dequeues() -> None:
    """In-process runs (`exit_when_idle_seconds=0`: no long poll) re-ask the store after `poll_seconds` or when a
    rollout ends, not in a busy loop while the agent runs."""

    class CountingStore(InMemoryLightningStore):
        dequeues = 0

        async def dequeue_rollout(self, worker_id: str | None = None, wait_seconds: float = 0.0):  # type: ignore[override]
            CountingStore.dequeues += 1
            return await super().dequeue_rollout(worker_id, wait_seconds)

    @rollout
    async def slow_agent(task: dict, llm: LLM) -> float:
        await asyncio.sleep(1.0)
        return 1.0

    store = CountingStore()
    await store.add_resources(LLM_RESOURCE)
    await store.enqueue_many_rollouts([{"input": {"x": i}, "mode": "train"} for i in range(2)])
    config = RunnerConfig(poll_seconds=0.5, exit_when_idle_seconds=0.0, max_concurrency=4)
    started = time.monotonic()
    assert await worker_loop(store, slow_agent, "inline", config=config) == 2
    assert time.monotonic() - started < 2.0, "the loop must leave as soon as its rollouts are done"
    assert CountingStore.dequeues <= 8, f"{CountingStore.dequeues} dequeues in ~1 s: the loop spins"


class FlakyStore(InMemoryLightningStore):
    """A fake: an in-memory store whose span writes for rollouts with `input.x == 0` fail as if the store were away,
    and whose first `claim_failures` dequeues fail the same way."""

    def __init__(self, claim_failures: int = 0) -> None:
        super().__init__()
        self.claim_failures = claim_failures
        self.bad_rollouts: set[str] = set()

    async def dequeue_rollout(self, worker_id=None, wait_seconds=0.0, idempotency_key=None):  # noqa: ANN001, ANN201
        if self.claim_failures > 0:
            self.claim_failures -= 1
            raise StoreUnavailableError("the store at http://fake did not answer (a test fault)")
        return await super().dequeue_rollout(worker_id, wait_seconds, idempotency_key)

    async def add_spans(self, spans, idempotency_key=None):  # noqa: ANN001, ANN201
        if any(s.rollout_id in self.bad_rollouts for s in spans):
            raise StoreUnavailableError("the store at http://fake did not answer POST /spans (a test fault)")
        return await super().add_spans(spans, idempotency_key)


async def test_a_store_error_in_one_rollout_ends_that_rollout_only() -> None:
    store = FlakyStore()
    await store.add_resources(LLM_RESOURCE)
    rollouts = await store.enqueue_many_rollouts([{"input": {"x": i}, "mode": "train"} for i in range(4)])
    store.bad_rollouts.add(rollouts[0].rollout_id)
    assert await worker_loop(store, sync_agent, "w", config=replace(FAST, max_concurrency=2)) == 4
    statuses = {r.rollout_id: r.status for r in await store.query_rollouts()}
    assert statuses.pop(rollouts[0].rollout_id) == "failed"
    assert set(statuses.values()) == {"succeeded"}
    attempt = (await store.query_attempts(rollouts[0].rollout_id))[-1]
    assert "spans could not be stored" in attempt.metadata["error"]


async def test_a_worker_waits_out_an_unreachable_store_instead_of_exiting(caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore(claim_failures=2)
    await store.add_resources(LLM_RESOURCE)
    await store.enqueue_many_rollouts([{"input": {"x": i}, "mode": "train"} for i in range(2)])
    started = time.monotonic()
    assert await worker_loop(store, sync_agent, "w", config=replace(FAST, exit_when_idle_seconds=0.5)) == 2
    assert 1.0 <= time.monotonic() - started < 10  # backed off 1 s, then 2 s
    assert caplog.text.count("cannot claim a rollout") == 2


async def test_sync_agents_run_max_concurrency_at_once_beyond_asyncios_default_threads() -> None:
    default_threads = min(32, (os.cpu_count() or 1) + 4)  # asyncio.to_thread's pool: 6 on 2 cores
    n = default_threads + 2
    inside, peak = [0], [0]

    @rollout
    def waiting_agent(task: dict, llm: LLM) -> float:
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        time.sleep(0.5)
        with lock:
            inside[0] -= 1
        return 1.0

    lock = threading.Lock()
    store = await _store_with_resources()
    await store.enqueue_many_rollouts([{"input": {}, "mode": "train"} for _ in range(n)])
    assert await worker_loop(store, waiting_agent, "w", config=replace(FAST, max_concurrency=n)) == n
    assert peak[0] == n, f"{peak[0]} of {n} sync episodes ran at once"


async def test_a_rollout_withdrawn_before_it_starts_is_dropped_not_fatal() -> None:
    store = await _store_with_resources()
    await store.enqueue_rollout({"x": 1})
    claimed = await store.dequeue_rollout("w")
    assert claimed is not None
    await store.cancel(claimed.rollout_id)  # lands between the claim and the runner's `running` report
    assert await run_rollout(store, sync_agent, claimed, Tracer(), FAST) == "dropped"
    assert (await store.get_rollout_by_id(claimed.rollout_id)).status == "cancelled"


async def test_a_stopping_worker_leaves_a_rollout_claimed_again_by_another_worker_alone() -> None:
    """Worker A's attempt went unresponsive and worker B claimed the rollout again; A stopping must not requeue it
    (that would fail B's live attempt)."""

    @rollout
    async def slow(task: dict, llm: LLM) -> float:
        await asyncio.sleep(30)
        return 1.0

    store = await _store_with_resources()
    rollout_id = (await store.enqueue_rollout({"x": 1}, config=RolloutConfig(unresponsive_seconds=0.3,
                                                                            max_attempts=2))).rollout_id
    first = await store.dequeue_rollout("A")
    assert first is not None
    task = asyncio.create_task(run_rollout(store, slow, first, Tracer(), RunnerConfig(heartbeat_seconds=10)))
    await asyncio.sleep(0.8)  # no heartbeat from A: its attempt is swept as unresponsive and the rollout requeued
    second = await store.dequeue_rollout("B")
    assert second is not None and second.attempt.sequence_id == 2
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    attempts = await store.query_attempts(rollout_id)
    assert [a.status for a in attempts] == ["unresponsive", "preparing"]
    assert (await store.get_rollout_by_id(rollout_id)).status == "preparing"


async def test_a_stopping_worker_whose_store_is_gone_exits_within_its_grace() -> None:
    """The give-backs of a stopping worker cannot land when the store is away (Ctrl-C took the trainer's store down
    first): the worker still exits within `shutdown_seconds`, not after the client's retry deadline."""

    class GoneStore(InMemoryLightningStore):  # a fake: from `gone` on, every write hangs like an unreachable store
        gone = False

        async def update_rollout(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            while self.gone:
                await asyncio.sleep(3600)
            return await super().update_rollout(*args, **kwargs)

        async def get_latest_attempt(self, rollout_id):  # noqa: ANN001, ANN202
            while self.gone:
                await asyncio.sleep(3600)
            return await super().get_latest_attempt(rollout_id)

    @rollout
    async def slow(task: dict, llm: LLM) -> float:
        await asyncio.sleep(30)
        return 1.0

    store = GoneStore()
    await store.add_resources(LLM_RESOURCE)
    await store.enqueue_many_rollouts([{"input": {"x": i}} for i in range(3)])
    stop = asyncio.Event()
    worker = asyncio.create_task(worker_loop(store, slow, "w", stop, RunnerConfig(max_concurrency=3,
                                                                                  shutdown_seconds=1.0)))
    while len(await store.query_rollouts(status=["running"])) < 3:
        await asyncio.sleep(0.05)
    store.gone = True
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(worker, timeout=10)
    assert time.monotonic() - started < 3.0


class NameCollector(SpanProcessor):
    """An extra OpenTelemetry span processor: collects span names (picklable, unlike OTel's in-memory exporter)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def on_end(self, span: Any) -> None:
        self.names.append(span.name)


def test_trainer_tracer_sees_every_span_and_pickles_for_runner_processes() -> None:
    import cloudpickle

    from agentlightning.trainer import Trainer

    collector = NameCollector()
    tracer = Tracer([collector])
    report = Trainer(n_runners=0, tracer=tracer).dev(async_agent, [{"x": 1}, {"x": 2}],
                                                     LLM(endpoint="http://127.0.0.1:9/v1", model="unused"))
    assert [row["status"] for row in report.rows] == ["succeeded", "succeeded"]
    assert collector.names.count(semconv.REWARD) == 2 and collector.names.count(semconv.OBJECT) == 2
    copy = cloudpickle.loads(cloudpickle.dumps(tracer))  # what RunnerPool hands its workers
    assert type(copy) is Tracer and [type(p) for p in copy.span_processors] == [NameCollector]


def test_dev_takes_a_hugging_face_dataset() -> None:
    import datasets

    from agentlightning.trainer import Trainer

    tasks = datasets.Dataset.from_list([{"id": "a", "x": 3}, {"id": "b", "x": 4}])
    report = Trainer(n_runners=0).dev(sync_agent, tasks, LLM(endpoint="http://127.0.0.1:9/v1", model="unused"))
    assert [(row["task"], row["reward"]) for row in report.rows] == [("a", 1.0), ("b", 0.0)]


async def test_run_rollouts_reports_progress() -> None:
    from agentlightning.trainer import Trainer

    seen: list[int] = []
    async with Trainer(n_runners=0).session(sync_agent, ["http://127.0.0.1:9/v1"]) as session:
        resources = await session.store.add_resources(LLM_RESOURCE)
        rollouts = await session.run_rollouts([{"x": 1}, {"x": 2}], "train", resources.resources_id,
                                              progress=seen.append)
    assert [r.status for r in rollouts] == ["succeeded", "succeeded"] and seen[-1] == 2


def test_runner_config_rejects_zero_concurrency() -> None:
    with pytest.raises(ValueError, match="max_concurrency=0"):
        RunnerConfig(max_concurrency=0)


async def test_agent_exception_fails_attempt_with_traceback() -> None:
    store = await _store_with_resources()
    r = await store.enqueue_rollout({"x": 1}, config=RolloutConfig(max_attempts=2, retry_condition=["failed"]))
    await worker_loop(store, RaisingAgent(), "w0", config=FAST)
    assert (await store.get_rollout_by_id(r.rollout_id)).status == "failed"
    attempts = await store.query_attempts(r.rollout_id)
    assert [a.status for a in attempts] == ["failed", "failed"]
    assert "ValueError: bad task {'x': 1}" in attempts[0].metadata["error"]
    assert "Traceback" in attempts[0].metadata["traceback"]
    spans = await store.query_spans(r.rollout_id, attempts[0].attempt_id)
    assert [s.name for s in spans] == [semconv.EXCEPTION] and spans[0].status == "error"


async def test_a_failed_attempt_records_whether_the_agent_or_the_infrastructure_failed() -> None:
    """An agent that raises on its own → cause "agent"; one whose model endpoint is unreachable (a real openai call to
    a closed port) → "infra"; `rollout_failure_cause` reads it back, and calls an unresponsive attempt "infra"."""
    import openai

    @rollout
    async def unreachable_endpoint(task: dict, llm: LLM) -> float:
        client = openai.AsyncOpenAI(base_url=llm.endpoint, api_key="x", max_retries=0, timeout=2.0)
        await client.chat.completions.create(model=llm.model, messages=[{"role": "user", "content": "hi"}])
        return 1.0

    store = await _store_with_resources()  # its LLM resource points at port 9 (discard): nothing listens there
    own = await store.enqueue_rollout({"x": 1}, config=RolloutConfig(max_attempts=1))
    await worker_loop(store, RaisingAgent(), "w0", config=FAST)
    away = await store.enqueue_rollout({"x": 2}, config=RolloutConfig(max_attempts=1))
    await worker_loop(store, unreachable_endpoint, "w1", config=FAST)
    assert [(await store.get_latest_attempt(r.rollout_id)).metadata["cause"] for r in (own, away)] == ["agent", "infra"]
    assert "APIConnectionError" in (await store.get_latest_attempt(away.rollout_id)).metadata["error"]
    assert [await rollout_failure_cause(store, await store.get_rollout_by_id(r.rollout_id)) for r in (own, away)] == [
        "agent", "infra"]
    killed = await store.enqueue_rollout({"x": 3}, config=RolloutConfig(max_attempts=1, unresponsive_seconds=0.2))
    assert await store.dequeue_rollout("killed-runner") is not None  # claimed, then never heard from again
    await asyncio.sleep(0.4)
    final = (await store.wait_for_rollouts([killed.rollout_id], timeout=5))[0]
    assert final.status == "failed" and await rollout_failure_cause(store, final) == "infra"


def test_failure_cause_reads_the_exception_and_what_it_was_raised_from() -> None:
    import anyio
    import httpx

    def raised_from(exc: BaseException, cause: BaseException) -> BaseException:
        exc.__cause__ = cause
        return exc

    infra = [ConnectionRefusedError(111, "refused"), TimeoutError(), httpx.ConnectError("down"),
             httpx.ReadTimeout("slow"), anyio.ClosedResourceError(), StoreUnavailableError("store away"),
             raised_from(RuntimeError("tool call failed"), BrokenPipeError()),
             ExceptionGroup("task group", [ValueError("x"), httpx.RemoteProtocolError("cut")])]
    agent = [ValueError("no number in the reply"), KeyError("answer"), RuntimeError("bug"),
             raised_from(RuntimeError("parse"), ValueError("bad json")), ExceptionGroup("g", [ValueError("x")])]
    assert [failure_cause(e) for e in infra] == ["infra"] * len(infra)
    assert [failure_cause(e) for e in agent] == ["agent"] * len(agent)


async def test_timeout_then_retry_succeeds() -> None:
    @rollout
    async def slow_first(task: dict, llm: LLM, attempt) -> float:  # noqa: ANN001
        if attempt.attempt.sequence_id == 1:
            await asyncio.sleep(5)
        return 1.0

    store = await _store_with_resources()
    r = await store.enqueue_rollout({"x": 1}, config=RolloutConfig(timeout_seconds=0.3, max_attempts=2))
    await worker_loop(store, slow_first, "w0", config=FAST)
    assert (await store.get_rollout_by_id(r.rollout_id)).status == "succeeded"
    assert [a.status for a in await store.query_attempts(r.rollout_id)] == ["timeout", "succeeded"]


async def test_late_result_of_superseded_attempt_is_counted_once() -> None:
    @rollout
    async def stalls(task: dict, llm: LLM, attempt) -> float:  # noqa: ANN001
        await asyncio.sleep(1.0 if attempt.attempt.sequence_id == 1 else 0.0)
        return float(attempt.attempt.sequence_id)

    store = await _store_with_resources()
    r = await store.enqueue_rollout({"x": 1}, config=RolloutConfig(unresponsive_seconds=0.3, max_attempts=2))
    first = await store.dequeue_rollout("stuck")
    assert first is not None
    no_heartbeat = RunnerConfig(heartbeat_seconds=30)
    late = asyncio.create_task(run_rollout(store, stalls, first, Tracer(), no_heartbeat))
    await asyncio.sleep(0.5)
    assert await worker_loop(store, stalls, "healthy", config=FAST) == 1  # takes the requeued rollout
    assert await late == "succeeded"  # the stale attempt reports late: recorded on it, nothing breaks
    rollout_now = await store.get_rollout_by_id(r.rollout_id)
    assert rollout_now.status == "succeeded" and rollout_now.num_attempts == 2
    assert len(await store.query_rollouts(status=["succeeded"])) == 1
    latest_rewards = [s.attributes["reward"] for s in await store.query_spans(r.rollout_id)
                      if s.name == semconv.REWARD]
    assert latest_rewards == [2.0]


async def test_emitters_outside_a_rollout_explain_the_fix() -> None:
    with pytest.raises(RuntimeError, match="outside a rollout.*Trainer"):
        emit_reward(1.0)
    store = await _store_with_resources()
    await store.enqueue_rollout({"x": 1})
    claimed = await store.dequeue_rollout()
    assert claimed is not None
    async with Tracer().trace_attempt(store, claimed.rollout_id, claimed.attempt.attempt_id):
        with pytest.raises(ValueError, match="finite number"):
            emit_reward(float("nan"))
        with pytest.raises(ValueError, match="primary_key"):
            emit_reward({"a": 1.0, "b": 2.0})


async def test_emit_metrics_are_summed_per_attempt_and_checked() -> None:
    store = await _store_with_resources()
    await store.enqueue_rollout({"x": 1})
    claimed = await store.dequeue_rollout()
    assert claimed is not None
    async with Tracer().trace_attempt(store, claimed.rollout_id, claimed.attempt.attempt_id):
        assert emit_metrics({"tool_calls": 2, "format_ok": True}) == {"tool_calls": 2.0, "format_ok": 1.0}
        emit_metrics({"tool_calls": 1})
        with pytest.raises(ValueError, match=r"metric errors=inf must be a finite number"):
            emit_metrics({"errors": float("inf")})
        with pytest.raises(ValueError, match="without '/'"):
            emit_metrics({"a/b": 1})
        with pytest.raises(ValueError, match="non-empty mapping"):
            emit_metrics({})
    result = await TraceAdapter().adapt_attempt(store, claimed.rollout_id)
    assert result.metrics == {"tool_calls": 3.0, "format_ok": 1.0}  # summed over the attempt's calls


def test_rollout_decorator_checks_signature() -> None:
    with pytest.raises(TypeError, match=r"\(task, llm\)"):
        rollout(lambda task: 1.0)


def _serve(store: InMemoryLightningStore) -> LightningStoreServer:
    server = LightningStoreServer(store, sweep_seconds=0.2)
    server.start_in_thread()
    return server


@rollout
def napping_agent(task: dict, llm: LLM) -> float:
    if "marker" in task:  # tells a test the agent is inside its (uninterruptible) sleep
        Path(task["marker"]).touch()
    time.sleep(task.get("sleep", 0.0))
    return 1.0


def _wait_status(client: LightningStoreClient, ids: list[str], timeout: float = 90) -> list[str]:
    done = asyncio.run(client.wait_for_rollouts(ids, timeout=timeout))
    return [r.status for r in done]


def test_process_pool_survives_a_killed_runner() -> None:
    store = InMemoryLightningStore()
    server = _serve(store)
    client = LightningStoreClient(server.url)
    try:
        asyncio.run(client.add_resources(LLM_RESOURCE))
        config = RolloutConfig(unresponsive_seconds=1.5, max_attempts=3)
        ids = [r.rollout_id for r in asyncio.run(client.enqueue_many_rollouts(
            [{"input": {"sleep": 3.0 if i == 0 else 0.2}, "config": config} for i in range(6)]))]
        pool = RunnerPool(napping_agent, server.url, n_runners=2, config=RunnerConfig(heartbeat_seconds=0.3))
        with pool:
            deadline = time.monotonic() + 60
            victim = None
            while victim is None and time.monotonic() < deadline:  # find the worker running the 3 s rollout
                attempts = asyncio.run(client.query_attempts(ids[0]))
                if attempts and attempts[-1].status == "running":
                    victim = attempts[-1].worker_id
                time.sleep(0.1)
            assert victim is not None
            os.kill(pool.pids()[victim], signal.SIGKILL)
            statuses = _wait_status(client, ids)
            assert pool.restarts >= 1
        assert statuses == ["succeeded"] * 6
        attempts = asyncio.run(client.query_attempts(ids[0]))
        assert attempts[0].status == "unresponsive" and attempts[-1].status == "succeeded"
        assert len(asyncio.run(client.query_rollouts(status=["succeeded"]))) == 6
    finally:
        server.stop_thread()


def test_pool_stop_requeues_in_flight_rollouts_and_leaves_no_process() -> None:
    store = InMemoryLightningStore()
    server = _serve(store)
    client = LightningStoreClient(server.url)
    try:
        asyncio.run(client.add_resources(LLM_RESOURCE))
        marker = Path(tempfile.mkdtemp(prefix="agl-nap-")) / "sleeping"
        task = {"sleep": 30, "marker": str(marker)}
        rollout_ids = [r.rollout_id for r in asyncio.run(client.enqueue_many_rollouts([{"input": task}]))]
        pool = RunnerPool(napping_agent, server.url, n_runners=2).start()
        deadline = time.monotonic() + 60
        while not marker.exists():  # the sync agent is in time.sleep(30), in a thread nothing can interrupt
            assert time.monotonic() < deadline
            time.sleep(0.1)
        pids = [p for p in pool.pids().values() if p]
        started = time.monotonic()
        pool.stop(timeout=20)
        assert time.monotonic() - started < 20
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        rollout_now = asyncio.run(client.get_rollout_by_id(rollout_ids[0]))
        assert rollout_now.status == "requeuing", "a claimed rollout must go back to the queue on shutdown"
    finally:
        server.stop_thread()


def test_ray_backend_runs_rollouts() -> None:
    ray = pytest.importorskip("ray")
    ray_dir = tempfile.mkdtemp(prefix="agl-ray-", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    store = InMemoryLightningStore()
    server = _serve(store)
    client = LightningStoreClient(server.url)
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=ray_dir, log_to_driver=False)
    try:
        asyncio.run(client.add_resources(LLM_RESOURCE))
        ids = [r.rollout_id for r in asyncio.run(client.enqueue_many_rollouts([{"input": {}} for _ in range(4)]))]
        with RunnerPool(napping_agent, server.url, n_runners=2, backend="ray"):
            assert _wait_status(client, ids) == ["succeeded"] * 4
        workers = {asyncio.run(client.get_latest_attempt(i)).worker_id for i in ids}  # type: ignore[union-attr]
        assert {w.split("@")[0] for w in workers} <= {"ray-runner-0", "ray-runner-1"}
    finally:
        ray.shutdown()
        server.stop_thread()
        shutil.rmtree(ray_dir, ignore_errors=True)


class UnloadableAgent(LitAgent):
    """An agent that cannot be rebuilt in a worker (its unpickling raises): workers crash at start."""

    def __init__(self) -> None:
        self.state = "has state, so unpickling calls __setstate__"

    def __setstate__(self, state: dict) -> None:
        raise ImportError("this agent cannot be loaded in a worker (test)")

    def training_rollout(self, task, resources, rollout):  # noqa: ANN001, ANN201
        return 1.0


def test_crash_looping_workers_are_reported_with_their_log() -> None:
    from agentlightning.runner_pool import RunnerCrashError

    store = InMemoryLightningStore()
    server = _serve(store)
    try:
        pool = RunnerPool(UnloadableAgent(), server.url, n_runners=1, crash_window_seconds=60, max_quick_crashes=2)
        with pool:
            deadline = time.monotonic() + 90
            with pytest.raises(RunnerCrashError, match="cannot be loaded in a worker") as info:
                while time.monotonic() < deadline:
                    pool.check()
                    time.sleep(0.2)
            assert pool.restarts == 1
            assert "(the agent could not be loaded (exit code 3) x2)" in str(info.value)
    finally:
        server.stop_thread()


def test_workers_killed_from_outside_are_restarted_not_counted_as_a_crash_loop() -> None:
    """SIGKILLs by someone else (an operator, the OOM killer) say nothing about the agent: restart every time."""
    store = InMemoryLightningStore()
    server = _serve(store)
    try:
        with RunnerPool(sync_agent, server.url, n_runners=1, crash_window_seconds=60, max_quick_crashes=2) as pool:
            for kills in range(1, 4):
                deadline = time.monotonic() + 60
                while len(pool.pids()) != 1 and time.monotonic() < deadline:
                    time.sleep(0.1)
                os.kill(next(iter(pool.pids().values())), signal.SIGKILL)
                while pool.restarts < kills and time.monotonic() < deadline:
                    pool.check()  # never a RunnerCrashError
                    time.sleep(0.1)
            assert pool.restarts == 3
            pool.check()
    finally:
        server.stop_thread()


def test_a_refused_worker_is_named_in_the_crash_error() -> None:
    from agentlightning.runner_pool import RunnerCrashError

    store = InMemoryLightningStore()
    server = LightningStoreServer(store, token="right")
    server.start_in_thread()
    try:
        pool = RunnerPool(sync_agent, server.url, n_runners=1, token="wrong", crash_window_seconds=60,
                          max_quick_crashes=2)
        with pool:
            deadline = time.monotonic() + 90
            with pytest.raises(RunnerCrashError, match=r"the store refused the worker \(exit code 4\) x2"):
                while time.monotonic() < deadline:
                    pool.check()
                    time.sleep(0.2)
    finally:
        server.stop_thread()


_POOL_PARENT = textwrap.dedent(
    """
    import time
    from agentlightning.agent import rollout
    from agentlightning.runner_pool import RunnerPool
    from agentlightning.store import InMemoryLightningStore, LightningStoreServer

    @rollout
    def idle(task, llm):
        return 0.0

    if __name__ == "__main__":
        server = LightningStoreServer(InMemoryLightningStore())
        server.start_in_thread()
        pool = RunnerPool(idle, server.url, n_runners=2).start()
        print(" ".join(str(p) for p in pool.pids().values()), flush=True)
        time.sleep(600)
    """
)


def test_workers_die_when_the_trainer_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(_POOL_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert len(pids) == 2
    parent.kill()  # SIGKILL: no finally, no atexit
    parent.wait(10)
    deadline = time.monotonic() + 20
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        time.sleep(0.2)
    assert not alive, f"runner workers {alive} outlived their killed parent"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting for its reaper counts as gone
        return stat.read().split()[2] != "Z"
