"""Idempotency keys (store contract, `store/idempotency.py`): a write repeated with its key applies once and answers
its first answer — on every backend, across a SQLite restart, and over a real socket whose first answer is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentlightning.store import (
    InMemoryLightningStore,
    LightningStore,
    LightningStoreClient,
    LightningStoreServer,
    SqliteLightningStore,
    StoreRequestError,
)
from agentlightning.store.idempotency import MISS, KeyCache
from agentlightning.types import Span
from tests.store.faults import FaultyProxy


def _span(rollout_id: str, attempt_id: str, name: str) -> Span:
    return Span(rollout_id=rollout_id, attempt_id=attempt_id, span_id=f"sp-{name}", name=name)


async def _claimed(store: LightningStore) -> tuple[str, str]:
    await store.enqueue_rollout("task")
    claimed = await store.dequeue_rollout("w")
    assert claimed is not None
    return claimed.rollout_id, claimed.attempt.attempt_id


async def test_enqueue_repeat_applies_once(store: LightningStore) -> None:
    first = await store.enqueue_many_rollouts([{"input": 1}, {"input": 2}], idempotency_key="k-enq")
    again = await store.enqueue_many_rollouts([{"input": 1}, {"input": 2}], idempotency_key="k-enq")
    assert [r.rollout_id for r in again] == [r.rollout_id for r in first]
    assert len(await store.query_rollouts()) == 2
    single = await store.enqueue_rollout("x", idempotency_key="k-one")
    assert (await store.enqueue_rollout("x", idempotency_key="k-one")).rollout_id == single.rollout_id
    assert len(await store.query_rollouts()) == 3


async def test_dequeue_repeat_returns_the_same_claim(store: LightningStore) -> None:
    await store.enqueue_many_rollouts([{"input": 1}, {"input": 2}])
    first = await store.dequeue_rollout("w", idempotency_key="k-deq")
    again = await store.dequeue_rollout("w", idempotency_key="k-deq")
    assert first is not None and again is not None
    assert again.attempt.attempt_id == first.attempt.attempt_id and again.rollout_id == first.rollout_id
    assert len(await store.query_attempts(first.rollout_id)) == 1  # never a second attempt
    other = await store.dequeue_rollout("w", idempotency_key="k-deq-2")
    assert other is not None and other.rollout_id != first.rollout_id
    assert await store.dequeue_rollout("w", idempotency_key="k-empty") is None  # an empty answer is not recorded:
    await store.enqueue_rollout(3)
    assert await store.dequeue_rollout("w", idempotency_key="k-empty") is not None  # its repeat polls again


async def test_update_attempt_repeat_answers_the_first_answer(store: LightningStore) -> None:
    rid, aid = await _claimed(store)
    first = await store.update_attempt(rid, aid, heartbeat=True, metadata={"n": 1}, idempotency_key="k-att")
    again = await store.update_attempt(rid, aid, heartbeat=True, metadata={"n": 1}, idempotency_key="k-att")
    assert again == first
    assert (await store.query_attempts(rid))[-1].last_heartbeat_time == first.last_heartbeat_time


async def test_update_rollout_repeat_does_not_requeue_twice(store: LightningStore) -> None:
    rid, _ = await _claimed(store)
    first = await store.update_rollout(rid, status="requeuing", idempotency_key="k-req")
    second = await store.dequeue_rollout("w2")  # attempt 2 now runs
    assert first.status == "requeuing" and second is not None and second.attempt.sequence_id == 2
    again = await store.update_rollout(rid, status="requeuing", idempotency_key="k-req")
    assert again == first  # the first answer; attempt 2 is left alone
    attempts = await store.query_attempts(rid)
    assert [a.status for a in attempts] == ["failed", "preparing"]
    assert (await store.get_rollout_by_id(rid)).status == "preparing"
    assert (await store.cancel(rid, idempotency_key="k-can")) == (await store.cancel(rid, idempotency_key="k-can"))


async def test_add_spans_repeat_stores_once(store: LightningStore) -> None:
    rid, aid = await _claimed(store)
    first = await store.add_spans([_span(rid, aid, "a"), _span(rid, aid, "b")], idempotency_key="k-spans")
    again = await store.add_spans([_span(rid, aid, "a"), _span(rid, aid, "b")], idempotency_key="k-spans")
    assert [s.sequence_id for s in again] == [s.sequence_id for s in first] == [1, 2]
    one = await store.add_span(_span(rid, aid, "c"), idempotency_key="k-span")
    assert (await store.add_span(_span(rid, aid, "c"), idempotency_key="k-span")).sequence_id == one.sequence_id == 3
    assert [s.name for s in await store.query_spans(rid, aid)] == ["a", "b", "c"]


async def test_resources_repeat_makes_one_version(store: LightningStore) -> None:
    first = await store.add_resources({"llm": {"resource_type": "llm", "endpoint": "http://x", "model": "m"}},
                                      idempotency_key="k-add")
    again = await store.add_resources({"llm": {"resource_type": "llm", "endpoint": "http://x", "model": "m"}},
                                      idempotency_key="k-add")
    assert again.resources_id == first.resources_id and again.version == 1
    res = {"llm": {"resource_type": "llm", "endpoint": "http://y", "model": "m"}}
    assert (await store.update_resources("policy", res, idempotency_key="k-up")).version == 1
    assert (await store.update_resources("policy", res, idempotency_key="k-up")).version == 1
    assert (await store.get_resources_by_id("policy")).version == 1
    assert (await store.update_resources("policy", res)).version == 2  # without a key: a new version


async def test_a_key_names_one_method(store: LightningStore) -> None:
    rid, aid = await _claimed(store)
    await store.update_attempt(rid, aid, heartbeat=True, idempotency_key="k-same")
    with pytest.raises(StoreRequestError, match="k-same"):
        await store.update_rollout(rid, metadata={"x": 1}, idempotency_key="k-same")


async def test_sqlite_keys_survive_a_restart(tmp_path: Path) -> None:
    store = SqliteLightningStore(tmp_path / "s.db")
    first = await store.enqueue_many_rollouts([{"input": 1}], idempotency_key="k-restart")
    await store.close()
    reopened = SqliteLightningStore(tmp_path / "s.db")
    again = await reopened.enqueue_many_rollouts([{"input": 1}], idempotency_key="k-restart")
    assert again == first and len(await reopened.query_rollouts()) == 1
    await reopened.close()


def test_key_cache_is_bounded_by_count_and_age(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = KeyCache(max_keys=3, ttl_seconds=10)
    for i in range(5):
        cache.put(f"k{i}", "m", i)
    assert len(cache) == 3 and cache.get("k0", "m") is MISS and cache.get("k4", "m") == 4
    import agentlightning.store.idempotency as idem

    now = idem.time.time()
    monkeypatch.setattr(idem.time, "time", lambda: now + 11)
    assert cache.get("k4", "m") is MISS
    cache.put("k5", "m", 5)
    assert len(cache) == 1


@pytest.mark.parametrize("fault", ["reset_after", "cut_answer"])
@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_every_write_route_over_a_socket_that_loses_the_first_answer(fault: str, backend: str,
                                                                           tmp_path: Path) -> None:
    """Each write's first answer is lost after the server applied it; the client's retry (same key) gets the first
    answer back and nothing is applied twice."""
    inner = InMemoryLightningStore() if backend == "memory" else SqliteLightningStore(tmp_path / "s.db")
    server = LightningStoreServer(inner)
    server.start_in_thread()
    faulty = FaultyProxy(server.port, rate=1.0, kinds=(fault,), spare_retries=True).start()
    client = LightningStoreClient(faulty.url, retry_deadline=10)
    try:
        faulty.enabled = True
        rollouts = await client.enqueue_many_rollouts([{"input": 1}, {"input": 2}])
        claimed = await client.dequeue_rollout("w")
        assert claimed is not None and claimed.rollout_id == rollouts[0].rollout_id
        rid, aid = claimed.rollout_id, claimed.attempt.attempt_id
        await client.update_attempt(rid, aid, status="running")
        spans = await client.add_spans([_span(rid, aid, "a"), _span(rid, aid, "b")])
        await client.update_attempt(rid, aid, status="succeeded")
        await client.update_rollout(rollouts[1].rollout_id, metadata={"tag": 1})
        await client.cancel(rollouts[1].rollout_id)
        added = await client.add_resources({"llm": {"resource_type": "llm", "endpoint": "http://x", "model": "m"}})
        updated = await client.update_resources("policy", {"llm": {"resource_type": "llm", "endpoint": "http://y",
                                                                    "model": "m"}})
        faulty.enabled = False
        # each write was faulted once and retried once with its key
        assert faulty.counts[fault] == faulty.counts["retried_writes"] == 9 and client.retries_made >= 9
        assert len(await inner.query_rollouts()) == 2
        assert [a.status for a in await inner.query_attempts(rid)] == ["succeeded"]
        assert [s.sequence_id for s in spans] == [1, 2] and len(await inner.query_spans(rid)) == 2
        assert (await inner.get_rollout_by_id(rollouts[1].rollout_id)).status == "cancelled"
        assert (await inner.get_resources_by_id(added.resources_id)).version == 1 and updated.version == 1
        assert (await inner.get_latest_resources()) == updated
    finally:
        await client.close()
        faulty.stop()
        server.stop_thread()
        await inner.close()
