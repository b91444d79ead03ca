"""The LightningStore contract (status machine, errors, spans, resources), run against every backend."""

from __future__ import annotations

import asyncio

import pytest

from agentlightning.store import InvalidTransitionError, LightningStore, NotFoundError
from agentlightning.types import LLM, PromptTemplate, ProxyLLM, RolloutConfig, Span


def _span(rollout_id: str, attempt_id: str, name: str = "llm", **attributes: object) -> Span:
    return Span(rollout_id=rollout_id, attempt_id=attempt_id, span_id=f"sp-{name}", name=name, attributes=attributes)


async def test_enqueue_dequeue_and_succeed(store: LightningStore) -> None:
    rollout = await store.enqueue_rollout({"question": "1+1"}, mode="train", metadata={"data_id": 7})
    assert rollout.status == "queuing" and rollout.input == {"question": "1+1"}
    claimed = await store.dequeue_rollout("worker-1")
    assert claimed is not None and claimed.rollout_id == rollout.rollout_id
    assert claimed.status == "preparing" and claimed.attempt.sequence_id == 1
    assert claimed.attempt.worker_id == "worker-1" and claimed.attempt.status == "preparing"
    assert await store.dequeue_rollout("worker-2") is None

    await store.update_attempt(rollout.rollout_id, claimed.attempt.attempt_id, status="running")
    assert (await store.get_rollout_by_id(rollout.rollout_id)).status == "running"
    attempt = await store.update_attempt(rollout.rollout_id, "latest", status="succeeded")
    assert attempt.status == "succeeded" and attempt.end_time is not None
    done = await store.get_rollout_by_id(rollout.rollout_id)
    assert done.status == "succeeded" and done.end_time is not None and done.metadata == {"data_id": 7}


async def test_queue_is_fifo_and_enqueue_many(store: LightningStore) -> None:
    rollouts = await store.enqueue_many_rollouts([{"input": i} for i in range(5)])
    order = [(await store.dequeue_rollout()).rollout_id for _ in range(5)]  # type: ignore[union-attr]
    assert order == [r.rollout_id for r in rollouts]
    assert [r.rollout_id for r in await store.query_rollouts(status=["preparing"])] == order


async def test_failure_retries_until_max_attempts_then_fails(store: LightningStore) -> None:
    config = RolloutConfig(max_attempts=2, retry_condition=["failed"])
    rollout = await store.enqueue_rollout("task", config=config)
    first = await store.dequeue_rollout()
    assert first is not None
    await store.update_attempt(rollout.rollout_id, first.attempt.attempt_id, status="failed")
    assert (await store.get_rollout_by_id(rollout.rollout_id)).status == "requeuing"
    second = await store.dequeue_rollout()
    assert second is not None and second.attempt.sequence_id == 2
    await store.update_attempt(rollout.rollout_id, second.attempt.attempt_id, status="failed")
    final = await store.get_rollout_by_id(rollout.rollout_id)
    assert final.status == "failed" and final.num_attempts == 2
    assert await store.dequeue_rollout() is None
    assert [a.status for a in await store.query_attempts(rollout.rollout_id)] == ["failed", "failed"]


async def test_failure_not_in_retry_condition_fails_at_once(store: LightningStore) -> None:
    rollout = await store.enqueue_rollout("task", config=RolloutConfig(max_attempts=3))  # retries timeouts only
    claimed = await store.dequeue_rollout()
    assert claimed is not None
    await store.update_attempt(rollout.rollout_id, claimed.attempt.attempt_id, status="failed")
    assert (await store.get_rollout_by_id(rollout.rollout_id)).status == "failed"


async def test_timeout_requeues_and_late_result_does_not_corrupt(store: LightningStore) -> None:
    config = RolloutConfig(timeout_seconds=0.2, max_attempts=2)
    rollout = await store.enqueue_rollout("slow", config=config)
    first = await store.dequeue_rollout("w1")
    assert first is not None
    await store.update_attempt(rollout.rollout_id, first.attempt.attempt_id, status="running")
    await asyncio.sleep(0.35)
    second = await store.dequeue_rollout("w2")  # dequeue sweeps: the first attempt timed out
    assert second is not None and second.rollout_id == rollout.rollout_id and second.attempt.sequence_id == 2
    attempts = await store.query_attempts(rollout.rollout_id)
    assert attempts[0].status == "timeout"

    # The superseded attempt returns late: recorded on that attempt only, no crash, rollout untouched.
    late = await store.update_attempt(rollout.rollout_id, first.attempt.attempt_id, status="succeeded")
    assert late.status == "succeeded"
    assert (await store.get_rollout_by_id(rollout.rollout_id)).status == "preparing"

    await store.update_attempt(rollout.rollout_id, second.attempt.attempt_id, status="succeeded")
    rollouts = await store.query_rollouts(status=["succeeded"])
    assert [r.rollout_id for r in rollouts] == [rollout.rollout_id]  # counted once


async def test_unresponsive_attempt_is_requeued_and_heartbeat_keeps_it_alive(store: LightningStore) -> None:
    config = RolloutConfig(unresponsive_seconds=0.3, max_attempts=2)
    alive = await store.enqueue_rollout("alive", config=config)
    dead = await store.enqueue_rollout("dead", config=config)
    a = await store.dequeue_rollout()
    d = await store.dequeue_rollout()
    assert a is not None and d is not None and a.rollout_id == alive.rollout_id
    for _ in range(4):
        await asyncio.sleep(0.12)
        await store.update_attempt(alive.rollout_id, a.attempt.attempt_id, heartbeat=True)
    assert (await store.get_rollout_by_id(alive.rollout_id)).status == "preparing"
    assert (await store.get_rollout_by_id(dead.rollout_id)).status == "requeuing"
    assert (await store.query_attempts(dead.rollout_id))[0].status == "unresponsive"


async def test_exhausted_timeouts_fail_and_late_success_never_succeeds(store: LightningStore) -> None:
    rollout = await store.enqueue_rollout("x", config=RolloutConfig(timeout_seconds=0.1, max_attempts=1))
    claimed = await store.dequeue_rollout()
    assert claimed is not None
    await asyncio.sleep(0.2)
    assert (await store.get_rollout_by_id(rollout.rollout_id)).status == "failed"
    await store.update_attempt(rollout.rollout_id, claimed.attempt.attempt_id, status="succeeded")
    assert (await store.get_rollout_by_id(rollout.rollout_id)).status == "failed"
    assert await store.query_rollouts(status=["succeeded"]) == []


async def test_cancel(store: LightningStore) -> None:
    queued = await store.enqueue_rollout("q")
    running = await store.enqueue_rollout("r")
    await store.dequeue_rollout()
    claimed = await store.dequeue_rollout()
    assert claimed is not None and claimed.rollout_id == running.rollout_id
    assert (await store.cancel(queued.rollout_id)).status == "cancelled"
    assert (await store.cancel(queued.rollout_id)).status == "cancelled"  # idempotent
    assert (await store.cancel(running.rollout_id)).status == "cancelled"
    assert (await store.query_attempts(running.rollout_id))[0].status == "cancelled"
    assert await store.dequeue_rollout() is None
    with pytest.raises(InvalidTransitionError, match=running.rollout_id):
        await store.update_rollout(running.rollout_id, status="running")


async def test_update_rollout_requeue_and_metadata(store: LightningStore) -> None:
    rollout = await store.enqueue_rollout("x")
    await store.dequeue_rollout()
    updated = await store.update_rollout(rollout.rollout_id, status="queuing", metadata={"why": "manual"})
    assert updated.status == "queuing" and updated.metadata == {"why": "manual"}
    assert (await store.query_attempts(rollout.rollout_id))[0].status == "failed"
    again = await store.dequeue_rollout()
    assert again is not None and again.attempt.sequence_id == 2


async def test_unknown_ids_and_illegal_transitions_raise_clearly(store: LightningStore) -> None:
    with pytest.raises(NotFoundError, match="ro-missing"):
        await store.get_rollout_by_id("ro-missing")
    with pytest.raises(NotFoundError, match="ro-missing"):
        await store.update_attempt("ro-missing", "latest", status="running")
    with pytest.raises(NotFoundError, match="rs-missing"):
        await store.get_resources_by_id("rs-missing")
    rollout = await store.enqueue_rollout("x")
    with pytest.raises(NotFoundError, match="never dequeued"):
        await store.update_attempt(rollout.rollout_id, "latest", status="running")
    claimed = await store.dequeue_rollout()
    assert claimed is not None
    with pytest.raises(NotFoundError, match="at-nope"):
        await store.update_attempt(rollout.rollout_id, "at-nope", status="running")
    await store.update_attempt(rollout.rollout_id, claimed.attempt.attempt_id, status="succeeded")
    with pytest.raises(InvalidTransitionError, match=r"succeeded.*cannot become running"):
        await store.update_attempt(rollout.rollout_id, claimed.attempt.attempt_id, status="running")
    with pytest.raises(InvalidTransitionError, match="final"):
        await store.update_rollout(rollout.rollout_id, status="failed")
    with pytest.raises(NotFoundError):
        await store.wait_for_rollouts(["ro-missing"], timeout=0.1)


async def test_wait_for_rollouts(store: LightningStore) -> None:
    rollouts = await store.enqueue_many_rollouts([{"input": 1}, {"input": 2}])
    ids = [r.rollout_id for r in rollouts]
    assert await store.wait_for_rollouts(ids, timeout=0.1) == []

    async def finish() -> None:
        for _ in ids:
            claimed = await store.dequeue_rollout()
            assert claimed is not None
            await asyncio.sleep(0.05)
            await store.update_attempt(claimed.rollout_id, claimed.attempt.attempt_id, status="succeeded")

    task = asyncio.create_task(finish())
    done = await store.wait_for_rollouts(ids, timeout=10)
    await task
    assert [r.rollout_id for r in done] == ids and all(r.status == "succeeded" for r in done)


async def test_spans_sequence_ids_and_attempt_selection(store: LightningStore) -> None:
    rollout = await store.enqueue_rollout("x", config=RolloutConfig(max_attempts=2, retry_condition=["failed"]))
    first = await store.dequeue_rollout()
    assert first is not None
    rid, aid1 = rollout.rollout_id, first.attempt.attempt_id
    assert await store.get_next_span_sequence_id(rid, aid1) == 1
    s2 = await store.add_span(_span(rid, aid1, "call-a", prompt_token_ids=[1, 2, 3], response_token_ids=[4, 5]))
    s3 = await store.add_span(_span(rid, aid1, "call-b"))
    assert (s2.sequence_id, s3.sequence_id) == (2, 3)
    await store.update_attempt(rid, aid1, status="failed")
    second = await store.dequeue_rollout()
    assert second is not None
    aid2 = second.attempt.attempt_id
    spans = await store.add_spans([_span(rid, aid2, "r1"), _span(rid, aid2, "r2")])
    assert [s.sequence_id for s in spans] == [1, 2]  # per-attempt counter

    latest = await store.query_spans(rid)
    assert [s.name for s in latest] == ["r1", "r2"]
    first_spans = await store.query_spans(rid, aid1)
    assert [s.name for s in first_spans] == ["call-a", "call-b"]
    assert first_spans[0].attributes["prompt_token_ids"] == [1, 2, 3]
    assert len(await store.query_spans(rid, None)) == 4
    with pytest.raises(NotFoundError):
        await store.add_span(_span(rid, "at-unknown"))


async def test_resources_versions(store: LightningStore) -> None:
    assert await store.get_latest_resources() is None
    llm = ProxyLLM(endpoint="http://127.0.0.1:9/v1", model="policy", sampling_parameters={"temperature": 0.7})
    first = await store.add_resources({"main_llm": llm, "prompt": PromptTemplate(template="Q: {q}")})
    assert first.version == 1 and first.resources_id.startswith("rs-")
    assert isinstance(first.resources["main_llm"], ProxyLLM)
    second = await store.update_resources("policy", {"main_llm": LLM(endpoint="http://127.0.0.1:9/v1", model="m")})
    third = await store.update_resources("policy", {"main_llm": LLM(endpoint="http://127.0.0.1:9/v1", model="m2")})
    assert (second.version, third.version) == (1, 2)
    latest = await store.get_latest_resources()
    assert latest is not None and latest.resources_id == "policy" and latest.resources["main_llm"].model == "m2"
    fetched = await store.get_resources_by_id(first.resources_id)
    assert fetched.resources["prompt"].format(q="2+2") == "Q: 2+2"  # type: ignore[union-attr]


async def test_bad_rollout_config_is_rejected_with_reason(store: LightningStore) -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        await store.enqueue_rollout("x", config={"max_attempts": 0})  # type: ignore[arg-type]


async def test_reserved_span_sequence_id_interleaves_with_added_spans(store: LightningStore) -> None:
    rollout = await store.enqueue_rollout("x")
    claimed = await store.dequeue_rollout()
    assert claimed is not None
    rid, aid = rollout.rollout_id, claimed.attempt.attempt_id
    first = await store.add_span(_span(rid, aid, "proxy-call"))
    reserved = await store.get_next_span_sequence_id(rid, aid)
    third = await store.add_span(_span(rid, aid, "reward"))
    assert (first.sequence_id, reserved, third.sequence_id) == (1, 2, 3)
    await store.add_span(_span(rid, aid, "tracer").model_copy(update={"sequence_id": reserved}))
    assert [s.name for s in await store.query_spans(rid)] == ["proxy-call", "tracer", "reward"]
    with pytest.raises(NotFoundError):
        await store.get_next_span_sequence_id(rid, "at-unknown")


async def test_dequeue_long_poll_answers_when_a_rollout_is_queued(store: LightningStore) -> None:
    started = asyncio.get_running_loop().time()
    assert await store.dequeue_rollout("w", wait_seconds=0.3) is None  # nothing queued: waits, then None
    assert asyncio.get_running_loop().time() - started >= 0.25

    waiting = asyncio.create_task(store.dequeue_rollout("w", wait_seconds=5.0))
    await asyncio.sleep(0.3)
    assert not waiting.done(), "a long poll must wait while the queue is empty"
    rollout = await store.enqueue_rollout({"x": 1})
    enqueued = asyncio.get_running_loop().time()
    claimed = await asyncio.wait_for(waiting, timeout=4.0)
    assert claimed is not None and claimed.rollout_id == rollout.rollout_id
    assert asyncio.get_running_loop().time() - enqueued < 1.0, "the claim must follow the enqueue, not the timeout"
    assert (await store.get_rollout_by_id(rollout.rollout_id)).status == "preparing"


async def test_a_cancelled_long_poll_keeps_nothing_and_leaves_the_store_usable(store: LightningStore) -> None:
    for _ in range(3):  # cancelled twice in a row, as a shutdown may do
        # (over HTTP a cancel returns once the server answers, so keep the wait short)
        waiting = asyncio.create_task(store.dequeue_rollout("leaving", wait_seconds=1.0))
        await asyncio.sleep(0.05)
        waiting.cancel()
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    rollout = await store.enqueue_rollout({"x": 1})
    claimed = await store.dequeue_rollout("staying", wait_seconds=3.0)  # over HTTP: after the server gives it back
    assert claimed is not None and claimed.rollout_id == rollout.rollout_id
    assert claimed.attempt.worker_id == "staying"
