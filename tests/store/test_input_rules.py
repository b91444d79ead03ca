"""What the store refuses, the same way on every backend: resources ids outside the one rule (or reserved), numbers
out of range (a 400 naming the field, never a 500), span batches with any bad span (nothing of the batch is stored),
spans that do not name a real attempt, and a `span_id` reused for a different span; plus the HTTP surface's token."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from pathlib import Path

import httpx
import pytest

from agentlightning.store import (
    InMemoryLightningStore,
    LightningStore,
    LightningStoreServer,
    NotFoundError,
    SqliteLightningStore,
    StoreRequestError,
)
from agentlightning.types import LLM, RolloutConfig, Span

RESOURCES = {"main_llm": LLM(endpoint="http://127.0.0.1:9/v1", model="m")}


def _span(rollout_id: str, attempt_id: str, span_id: str, **changes: object) -> Span:
    span = Span(rollout_id=rollout_id, attempt_id=attempt_id, span_id=span_id, name="llm.call",
                start_time=1.5, end_time=2.5, attributes={"n": [1, 2]})
    return span.model_copy(update=changes) if changes else span


async def _claimed(store: LightningStore) -> tuple[str, str]:
    await store.enqueue_rollout("task")
    claimed = await store.dequeue_rollout("w")
    assert claimed is not None
    return claimed.rollout_id, claimed.attempt.attempt_id


# ---------------------------------------------------------------------------------------------------- resources ids
@pytest.mark.parametrize("bad", ["policy#1", "v?x=1", "a/b", "", "x" * 129, "two words", "pölicy", "%2F"])
async def test_resources_ids_follow_one_rule(store: LightningStore, bad: str) -> None:
    with pytest.raises(StoreRequestError, match=r"A-Za-z0-9\._-.*Fix") as exc:
        await store.update_resources(bad, RESOURCES)
    assert repr(bad) in str(exc.value), "the error names the id"
    assert await store.get_latest_resources() is None, "nothing was stored"


async def test_valid_resources_ids_round_trip(store: LightningStore) -> None:
    for good in ["policy", "policy-1.v2_final", "A" * 128, "rs-0123abcd"]:
        stored = await store.update_resources(good, RESOURCES)
        assert stored.resources_id == good
        assert (await store.get_resources_by_id(good)).resources_id == good


@pytest.mark.parametrize("reserved", ["latest", ".", ".."])
async def test_reserved_resources_ids_are_refused(store: LightningStore, reserved: str) -> None:
    await store.update_resources("policy", RESOURCES)
    with pytest.raises(StoreRequestError, match=rf"{reserved!r} is reserved.*Fix"):
        await store.update_resources(reserved, RESOURCES)
    with pytest.raises(NotFoundError, match="reserved|do not exist"):
        await store.get_resources_by_id(reserved)  # never the newest resources in disguise
    assert (await store.get_latest_resources()).resources_id == "policy"  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------------- numbers
async def test_sequence_id_beyond_sqlite_integer_is_a_request_error(store: LightningStore) -> None:
    rid, aid = await _claimed(store)
    with pytest.raises(ValueError, match="sequence_id"):
        Span(rollout_id=rid, attempt_id=aid, span_id="s", name="n", sequence_id=2**63)
    for bad in (2**63, 2**70, -1):  # (model_copy skips the model's own check: the store checks again)
        with pytest.raises(StoreRequestError, match=r"sequence_id.*Fix"):
            await store.add_span(_span(rid, aid, "big", sequence_id=bad))
    top = await store.add_span(_span(rid, aid, "top", sequence_id=2**63 - 1))
    assert top.sequence_id == 2**63 - 1
    with pytest.raises(StoreRequestError, match="sequence"):  # the counter has nowhere to go
        await store.add_span(_span(rid, aid, "next"))
    assert [s.span_id for s in await store.query_spans(rid, aid)] == ["top"]


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_http_answers_400_naming_the_field_for_out_of_range_numbers(backend: str, tmp_path: Path) -> None:
    inner = InMemoryLightningStore() if backend == "memory" else SqliteLightningStore(tmp_path / "s.db")
    server = LightningStoreServer(inner)
    await server.start()
    try:
        rid, aid = await _claimed(inner)
        async with httpx.AsyncClient(base_url=server.url) as http:
            span = _span(rid, aid, "s").model_dump(mode="json")
            for field, literal in [("sequence_id", str(2**64)), ("sequence_id", str(2**63)), ("sequence_id", "-5"),
                                   ("start_time", "Infinity")]:
                response = await _post(http, "/spans", {"spans": [{**span, field: _RAW}]}, literal)
                assert response.status_code == 400, (field, literal, response.text)
                assert field in response.json()["detail"], response.text
            for field, literal in [("timeout_seconds", "NaN"), ("unresponsive_seconds", "Infinity"),
                                   ("max_attempts", "0")]:
                response = await _post(http, "/rollouts/enqueue", {"requests": [{"input": 1, "config": {field: _RAW}}]},
                                       literal)
                assert response.status_code == 400 and field in response.json()["detail"], response.text
            for route, field, literal in [("/rollouts/wait", "timeout", "-1"), ("/rollouts/wait", "timeout", "NaN"),
                                          ("/rollouts/dequeue", "wait_seconds", "Infinity")]:
                body = {field: _RAW, **({"rollout_ids": []} if route == "/rollouts/wait" else {})}
                response = await _post(http, route, body, literal)
                assert response.status_code == 400 and field in response.json()["detail"], (route, response.text)
        assert await inner.query_spans(rid, aid) == []
        assert len(await inner.query_rollouts()) == 1
    finally:
        await server.stop()
        await inner.close()


_RAW = "@raw@"


async def _post(http: httpx.AsyncClient, path: str, body: dict[str, object], literal: str) -> httpx.Response:
    """POST `body` with the value `_RAW` written as the raw JSON `literal` (numbers no Python client would send)."""
    content = json.dumps(body).replace(json.dumps(_RAW), literal)
    return await http.post(path, content=content, headers={"content-type": "application/json"})


async def test_rollout_config_numbers_must_be_finite(store: LightningStore) -> None:
    for field in ("timeout_seconds", "unresponsive_seconds"):
        for value in (math.inf, math.nan):
            with pytest.raises(ValueError, match=field):
                RolloutConfig(**{field: value})
            with pytest.raises(ValueError, match=field):
                await store.enqueue_rollout("x", config={field: value})  # type: ignore[arg-type]
    assert await store.query_rollouts() == []


async def test_wait_seconds_must_be_a_finite_number(store: LightningStore) -> None:
    rollout = await store.enqueue_rollout("x")
    for bad in (math.nan, math.inf, -1.0):
        with pytest.raises(StoreRequestError, match=r"timeout.*Fix"):
            await asyncio.wait_for(store.wait_for_rollouts([rollout.rollout_id], timeout=bad), 5)
    assert await store.wait_for_rollouts([rollout.rollout_id], timeout=0) == []


# ---------------------------------------------------------------------------------------------------- span batches
async def test_a_span_batch_is_stored_all_or_nothing(store: LightningStore) -> None:
    rid, aid = await _claimed(store)
    good = _span(rid, aid, "good")
    await store.add_span(_span(rid, aid, "taken"))
    bad_batches: list[tuple[type[Exception], Span]] = [
        (NotFoundError, _span(rid, "at-unknown", "b1")),
        (NotFoundError, _span("ro-unknown", aid, "b2")),
        (StoreRequestError, _span(rid, "latest", "b3")),
        (StoreRequestError, _span(rid, aid, "taken", name="another")),  # a different span under a stored span_id
        (StoreRequestError, _span(rid, aid, "good", name="another")),  # ... under a span_id earlier in the batch
        (StoreRequestError, _span(rid, aid, "b4", sequence_id=2**63)),
    ]
    for error, bad in bad_batches:
        with pytest.raises(error):
            await store.add_spans([good, _span(rid, aid, "good-2"), bad])
        assert [s.span_id for s in await store.query_spans(rid, None)] == ["taken"], f"stored part of a batch ({bad})"
    assert await store.get_next_span_sequence_id(rid, aid) == 2, "a refused batch reserves no sequence id"


async def test_a_span_must_name_a_real_attempt(store: LightningStore) -> None:
    rid, aid = await _claimed(store)
    with pytest.raises(StoreRequestError, match=r"'latest'.*Fix"):
        await store.add_span(_span(rid, "latest", "s1"))
    with pytest.raises(NotFoundError, match="at-nope"):
        await store.add_span(_span(rid, "at-nope", "s2"))
    assert await store.query_spans(rid, None) == []
    stored = await store.add_span(_span(rid, aid, "s3"))
    assert stored.attempt_id == aid and [s.span_id for s in await store.query_spans(rid, "latest")] == ["s3"]


async def test_a_repeated_span_id_is_idempotent_and_a_conflicting_one_refused(store: LightningStore) -> None:
    rid, aid = await _claimed(store)
    first = await store.add_span(_span(rid, aid, "call-1"))
    again = await store.add_span(_span(rid, aid, "call-1"))  # re-sent (no idempotency key): the same span
    assert again == first and again.sequence_id == 1
    explicit = await store.add_span(_span(rid, aid, "call-1", sequence_id=1))  # re-sent with its sequence id
    assert explicit == first
    batch = await store.add_spans([_span(rid, aid, "call-2"), _span(rid, aid, "call-2"), _span(rid, aid, "call-1")])
    assert [s.sequence_id for s in batch] == [2, 2, 1]
    with pytest.raises(StoreRequestError, match=r"'call-1'.*Fix") as exc:
        await store.add_span(_span(rid, aid, "call-1", name="reward"))
    assert aid in str(exc.value)
    with pytest.raises(StoreRequestError, match="call-1"):
        await store.add_span(_span(rid, aid, "call-1", sequence_id=7))  # same span_id, another place in the order
    assert [(s.span_id, s.sequence_id) for s in await store.query_spans(rid, aid)] == [("call-1", 1), ("call-2", 2)]
    assert await store.get_next_span_sequence_id(rid, aid) == 3


async def test_span_ids_are_per_attempt(store: LightningStore) -> None:
    config = RolloutConfig(max_attempts=2, retry_condition=["failed"])
    rollout = await store.enqueue_rollout("x", config=config)
    first = await store.dequeue_rollout()
    assert first is not None
    await store.add_span(_span(rollout.rollout_id, first.attempt.attempt_id, "same"))
    await store.update_attempt(rollout.rollout_id, first.attempt.attempt_id, status="failed")
    second = await store.dequeue_rollout()
    assert second is not None
    other = await store.add_span(_span(rollout.rollout_id, second.attempt.attempt_id, "same", name="other"))
    assert other.attempt_id == second.attempt.attempt_id
    assert len(await store.query_spans(rollout.rollout_id, None)) == 2


async def test_sqlite_file_from_before_span_ids_were_indexed(tmp_path: Path) -> None:
    """A store file written before the spans table had its span_id column still opens, and its spans count."""
    path = tmp_path / "old.sqlite"
    store = SqliteLightningStore(path)
    rid, aid = await _claimed(store)
    await store.close()
    old = _span(rid, aid, "old", sequence_id=1)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE spans")
        conn.execute("CREATE TABLE spans (rollout_id TEXT NOT NULL, attempt_id TEXT NOT NULL, "
                     "sequence_id INTEGER NOT NULL, data TEXT NOT NULL)")
        conn.execute("INSERT INTO spans VALUES (?, ?, 1, ?)", (rid, aid, old.model_dump_json()))
        conn.execute("UPDATE attempts SET span_counter = 1")
    reopened = SqliteLightningStore(path)
    try:
        assert await reopened.add_span(_span(rid, aid, "old")) == old
        with pytest.raises(StoreRequestError, match="'old'"):
            await reopened.add_span(_span(rid, aid, "old", name="changed"))
        assert (await reopened.add_span(_span(rid, aid, "new"))).sequence_id == 2
    finally:
        await reopened.close()


# ---------------------------------------------------------------------------------------------------- the HTTP surface
async def test_docs_and_schema_need_the_token_only_health_is_open() -> None:
    server = LightningStoreServer(InMemoryLightningStore(), token="s3cret")
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/health")).status_code == 200
            for path in ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/no-such-route",
                         "/resources/latest"]:
                response = await http.get(path)
                assert response.status_code == 401, (path, response.status_code)
                assert "Bearer" in response.json()["detail"]
            response = await http.get("/openapi.json", headers={"Authorization": "Bearer wrong"})
            assert response.status_code == 401
            authorized = {"Authorization": "Bearer s3cret"}
            for path in ["/docs", "/redoc", "/openapi.json"]:
                assert (await http.get(path, headers=authorized)).status_code == 200, path
    finally:
        await server.stop()
    open_server = LightningStoreServer(InMemoryLightningStore())  # no token: everything is open, docs included
    await open_server.start()
    try:
        async with httpx.AsyncClient(base_url=open_server.url) as http:
            assert (await http.get("/openapi.json")).status_code == 200
    finally:
        await open_server.stop()
