"""LLMProxy against scripted fake upstreams (no vLLM): recording, stripping, streaming, balancing, failover, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fakes import EOS, PROMPT_IDS, WORD_IDS, FakeUpstream

from agentlightning.proxy import BackendPool, LLMProxy
from agentlightning.proxy.backends import normalize_backend_url
from agentlightning.store import InMemoryLightningStore
from agentlightning.types import AttemptedRollout, ProxyLLM

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": 0}


@pytest.fixture
async def proxy(fake: FakeUpstream, store: InMemoryLightningStore) -> AsyncIterator[LLMProxy]:
    p = LLMProxy([fake.url], store, cooldown_s=30)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as c:
        yield c


def _url(proxy: LLMProxy, attempted: AttemptedRollout) -> str:
    return proxy.as_resource(model="m").with_attempted_rollout(attempted).endpoint


async def _sse(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> list[Any]:
    chunks: list[Any] = []
    async with client.stream("POST", url, json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                chunks.append(line[6:] if line[6:] == "[DONE]" else json.loads(line[6:]))
    return chunks


async def test_chat_call_is_recorded_and_ids_stripped(proxy: LLMProxy, fake: FakeUpstream, client: httpx.AsyncClient,
                                                      store: InMemoryLightningStore,
                                                      attempted: AttemptedRollout) -> None:
    response = await client.post(_url(proxy, attempted) + "/chat/completions", json=CHAT)
    assert response.status_code == 200
    data = response.json()
    assert data["choices"][0]["message"]["content"] == "Hello from fake"
    assert "prompt_token_ids" not in data and "token_ids" not in data["choices"][0]  # client did not ask
    assert fake.requests[-1]["return_token_ids"] is True  # but the proxy asked upstream
    spans = await store.query_spans(attempted.rollout_id, attempted.attempt.attempt_id)
    assert len(spans) == 1
    span = spans[0]
    assert span.name == "llm.call" and span.status == "ok" and span.sequence_id == 1
    a = span.attributes
    assert a["prompt_token_ids"] == PROMPT_IDS and a["response_token_ids"] == WORD_IDS + [EOS]
    assert a["request"]["messages"] == CHAT["messages"]
    assert a["request"]["sampling_params"] == {"max_tokens": 4, "temperature": 0}
    assert a["response"]["text"] == "Hello from fake" and a["response"]["finish_reason"] == "stop"
    assert a["backend"] == normalize_backend_url(fake.url) and a["model"] == "m" and a["latency_s"] > 0
    assert a["usage"]["completion_tokens"] == 4


async def test_client_that_asks_for_token_ids_keeps_them(proxy: LLMProxy, client: httpx.AsyncClient,
                                                         attempted: AttemptedRollout) -> None:
    data = (await client.post(_url(proxy, attempted) + "/chat/completions",
                              json={**CHAT, "return_token_ids": True})).json()
    assert data["prompt_token_ids"] == PROMPT_IDS and data["choices"][0]["token_ids"] == WORD_IDS + [EOS]


async def test_logprobs_requested_recorded_and_stripped(fake: FakeUpstream, store: InMemoryLightningStore,
                                                        client: httpx.AsyncClient,
                                                        attempted: AttemptedRollout) -> None:
    proxy = LLMProxy([fake.url], store, request_logprobs=True)
    await proxy.start()
    try:
        url = _url(proxy, attempted)
        data = (await client.post(url + "/chat/completions", json=CHAT)).json()
        assert data["choices"][0].get("logprobs") is None
        data = (await client.post(url + "/completions", json={"model": "m", "prompt": "2+2="})).json()
        assert data["choices"][0].get("logprobs") is None and "token_ids" not in data["choices"][0]
        assert fake.requests[-1]["logprobs"] == 1 and fake.requests[-2]["logprobs"] is True
        spans = await store.query_spans(attempted.rollout_id)
        assert spans[0].attributes["logprobs"] == [-0.5, -0.5, -0.5, -0.1]
        assert spans[1].attributes["logprobs"] == [-0.5, -0.5, -0.5, -0.1]
        assert spans[1].attributes["request"]["prompt"] == "2+2="
        assert spans[1].attributes["prompt_token_ids"] == PROMPT_IDS
    finally:
        await proxy.stop()


async def test_keep_token_ids(fake: FakeUpstream, store: InMemoryLightningStore, client: httpx.AsyncClient,
                              attempted: AttemptedRollout) -> None:
    proxy = LLMProxy([fake.url], store, keep_token_ids=True)
    await proxy.start()
    try:
        data = (await client.post(_url(proxy, attempted) + "/chat/completions", json=CHAT)).json()
        assert data["prompt_token_ids"] == PROMPT_IDS
    finally:
        await proxy.stop()


@pytest.mark.parametrize("chat", [True, False])
async def test_streaming_passes_chunks_and_records_whole(proxy: LLMProxy, client: httpx.AsyncClient,
                                                         store: InMemoryLightningStore, attempted: AttemptedRollout,
                                                         chat: bool) -> None:
    url = _url(proxy, attempted) + ("/chat/completions" if chat else "/completions")
    body = {**CHAT, "stream": True} if chat else {"model": "m", "prompt": "x", "stream": True}
    chunks = await _sse(client, url, body)
    assert chunks[-1] == "[DONE]"
    for chunk in chunks[:-1]:  # stripped: the client did not ask for token ids
        assert "prompt_token_ids" not in chunk
        assert all("token_ids" not in c for c in chunk["choices"])
    text = "".join((c["delta"].get("content") or "") if chat else c["text"]
                   for chunk in chunks[:-1] for c in chunk["choices"])
    assert text == "Hello from fake"
    (span,) = await store.query_spans(attempted.rollout_id)
    assert span.status == "ok" and span.attributes["stream"] is True
    assert span.attributes["prompt_token_ids"] == PROMPT_IDS
    assert span.attributes["response_token_ids"] == WORD_IDS + [EOS]
    assert span.attributes["response"]["text"] == "Hello from fake"
    assert span.attributes["usage"]["completion_tokens"] == 4


async def test_stream_with_token_ids_requested_is_passed_raw(proxy: LLMProxy, client: httpx.AsyncClient,
                                                            attempted: AttemptedRollout) -> None:
    chunks = await _sse(client, _url(proxy, attempted) + "/chat/completions",
                        {**CHAT, "stream": True, "return_token_ids": True})
    assert chunks[0]["prompt_token_ids"] == PROMPT_IDS
    assert [i for c in chunks[1:-1] for ch in c["choices"] for i in ch.get("token_ids", [])] == WORD_IDS + [EOS]


async def test_tool_call_recorded(proxy: LLMProxy, fake: FakeUpstream, client: httpx.AsyncClient,
                                  store: InMemoryLightningStore, attempted: AttemptedRollout) -> None:
    fake.tool_call = True
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    data = (await client.post(_url(proxy, attempted) + "/chat/completions", json={**CHAT, "tools": tools})).json()
    assert data["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    (span,) = await store.query_spans(attempted.rollout_id)
    assert span.attributes["request"]["tools"] == tools
    assert span.attributes["response"]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    assert span.attributes["response"]["finish_reason"] == "tool_calls"


async def test_plain_route_served_not_recorded(proxy: LLMProxy, fake: FakeUpstream, client: httpx.AsyncClient,
                                               store: InMemoryLightningStore, attempted: AttemptedRollout) -> None:
    response = await client.post(proxy.base_url + "/chat/completions", json=CHAT)
    assert response.status_code == 200 and "return_token_ids" not in fake.requests[-1]
    assert await store.query_spans(attempted.rollout_id) == []
    models = (await client.get(proxy.base_url + "/models")).json()
    assert models["data"][0]["id"] == "fake-a"


async def test_unknown_rollout_or_attempt_is_404(proxy: LLMProxy, client: httpx.AsyncClient, fake: FakeUpstream,
                                                 attempted: AttemptedRollout) -> None:
    r = await client.post(f"{proxy.url}/rollout/ro-nope/attempt/at-1/v1/chat/completions", json=CHAT)
    assert r.status_code == 404 and "ro-nope" in r.json()["error"]["message"]
    r = await client.post(f"{proxy.url}/rollout/{attempted.rollout_id}/attempt/at-nope/v1/chat/completions",
                          json=CHAT)
    assert r.status_code == 404 and "at-nope" in r.json()["error"]["message"]
    assert fake.requests == []


@pytest.mark.parametrize("raw,needle", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({"model": "m", "messages": []}).encode(), "'messages'"),
    (json.dumps({"model": "m", "messages": ["hi"]}).encode(), "messages[0]"),
    (json.dumps({**CHAT, "stream": "yes"}).encode(), "'stream'"),
])
async def test_malformed_body_is_400(proxy: LLMProxy, client: httpx.AsyncClient, attempted: AttemptedRollout,
                                     raw: bytes, needle: str) -> None:
    r = await client.post(_url(proxy, attempted) + "/chat/completions", content=raw)
    assert r.status_code == 400 and needle in r.json()["error"]["message"]


async def test_completions_prompt_validation(proxy: LLMProxy, client: httpx.AsyncClient) -> None:
    r = await client.post(proxy.base_url + "/completions", json={"model": "m"})
    assert r.status_code == 400 and "'prompt'" in r.json()["error"]["message"]


async def test_api_key(fake: FakeUpstream, store: InMemoryLightningStore, client: httpx.AsyncClient,
                       attempted: AttemptedRollout) -> None:
    proxy = LLMProxy([fake.url], store, api_key="s3cret")
    await proxy.start()
    try:
        url = _url(proxy, attempted) + "/chat/completions"
        assert (await client.post(url, json=CHAT)).status_code == 401
        assert (await client.post(url, json=CHAT, headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await client.get(proxy.base_url + "/models")).status_code == 401
        assert (await client.post(url, json=CHAT, headers={"Authorization": "Bearer s3cret"})).status_code == 200
        assert (await client.get(proxy.url + "/health")).status_code == 200
        assert proxy.as_resource(model="m").api_key == "s3cret"
    finally:
        await proxy.stop()


async def test_upstream_4xx_passed_through_and_recorded_as_error(proxy: LLMProxy, fake: FakeUpstream,
                                                                 client: httpx.AsyncClient,
                                                                 store: InMemoryLightningStore,
                                                                 attempted: AttemptedRollout) -> None:
    fake.fail_with = 400
    r = await client.post(_url(proxy, attempted) + "/chat/completions", json=CHAT)
    assert r.status_code == 400 and "scripted failure" in r.text
    assert len(fake.requests) == 1  # 4xx is not retried
    (span,) = await store.query_spans(attempted.rollout_id)
    assert span.status == "error" and "scripted failure" in span.attributes["error"]
    assert "prompt_token_ids" not in span.attributes


async def test_5xx_fails_over_to_other_backend(fake: FakeUpstream, fake_b: FakeUpstream,
                                               store: InMemoryLightningStore, client: httpx.AsyncClient,
                                               attempted: AttemptedRollout) -> None:
    fake.fail_with = 503
    proxy = LLMProxy([fake.url, fake_b.url], store, num_retries=2, cooldown_s=30)
    await proxy.start()
    try:
        for _ in range(4):
            r = await client.post(_url(proxy, attempted) + "/chat/completions", json=CHAT)
            assert r.status_code == 200
        assert len(fake.requests) == 1  # tried once, then avoided during its cooldown
        assert len(fake_b.requests) == 4
        spans = await store.query_spans(attempted.rollout_id)
        assert [s.status for s in spans] == ["ok"] * 4
        assert {s.attributes["backend"] for s in spans} == {normalize_backend_url(fake_b.url)}
    finally:
        await proxy.stop()


async def test_all_backends_down_is_502_with_cause_and_no_ok_span(fake: FakeUpstream,
                                                                  store: InMemoryLightningStore,
                                                                  client: httpx.AsyncClient,
                                                                  attempted: AttemptedRollout) -> None:
    fake.fail_with = 500
    proxy = LLMProxy([fake.url, "http://127.0.0.1:9/v1"], store, num_retries=2)
    await proxy.start()
    try:
        r = await client.post(_url(proxy, attempted) + "/chat/completions", json=CHAT)
        assert r.status_code == 502
        message = r.json()["error"]["message"]
        assert "after 3 tries" in message and "HTTP 500" in message and "ConnectError" in message
        (span,) = await store.query_spans(attempted.rollout_id)
        assert span.status == "error" and "HTTP 500" in span.attributes["error"]
        assert "response_token_ids" not in span.attributes
    finally:
        await proxy.stop()


async def test_least_outstanding_balancing(fake: FakeUpstream, fake_b: FakeUpstream, store: InMemoryLightningStore,
                                           client: httpx.AsyncClient, attempted: AttemptedRollout) -> None:
    fake.delay_s = 0.5
    fake_b.delay_s = 0.5
    proxy = LLMProxy([fake.url, fake_b.url], store)
    await proxy.start()
    try:
        url = _url(proxy, attempted) + "/chat/completions"
        results = await asyncio.gather(*[client.post(url, json=CHAT) for _ in range(4)])
        assert all(r.status_code == 200 for r in results)
        assert len(fake.requests) == len(fake_b.requests) == 2  # equal load: spread evenly
        assert fake.max_in_flight == fake_b.max_in_flight == 2
        # Keep one long call in flight on `fake`; every call meanwhile goes to the idle `fake_b`.
        fake.delay_s, fake_b.delay_s = 3.0, 0.0
        background = []
        while fake.in_flight == 0:
            background.append(asyncio.create_task(client.post(url, json=CHAT)))
            await asyncio.sleep(0.2)
        before = len(fake.requests)
        for _ in range(5):
            assert (await client.post(url, json=CHAT)).status_code == 200
        assert len(fake.requests) == before
        assert all(r.status_code == 200 for r in await asyncio.gather(*background))
    finally:
        await proxy.stop()


def test_pool_picks_least_outstanding_with_round_robin_ties() -> None:
    pool = BackendPool(["http://a:1/v1", "http://b:1", "http://c:1/"])
    assert pool.urls == ["http://a:1", "http://b:1", "http://c:1"]
    picked = []
    for _ in range(3):
        backend = pool.pick()
        backend.outstanding += 1
        picked.append(backend.url)
    assert sorted(picked) == pool.urls  # each once while loads are equal
    pool._backends["http://b:1"].outstanding = 0
    assert pool.pick().url == "http://b:1"
    assert pool.pick({"http://b:1"}).url in {"http://a:1", "http://c:1"}
    assert pool.pick({"http://a:1", "http://b:1", "http://c:1"}) is None


def test_pool_membership_changes() -> None:
    pool = BackendPool(["http://a:1"])
    pool.add_backend("http://b:1/v1")
    pool.add_backend("http://b:1")  # no duplicate
    assert pool.urls == ["http://a:1", "http://b:1"]
    pool.remove_backend("http://a:1/v1")
    assert pool.urls == ["http://b:1"]
    with pytest.raises(KeyError, match="http://zz"):
        pool.remove_backend("http://zz:1")
    pool.replace_backends(["http://c:1", "http://b:1"])
    assert pool.urls == ["http://c:1", "http://b:1"]
    with pytest.raises(ValueError, match="must start with http"):
        pool.add_backend("localhost:8000")
    with pytest.raises(ValueError, match="num_retries=-1"):
        BackendPool([], num_retries=-1)


async def test_runtime_backend_changes(fake: FakeUpstream, fake_b: FakeUpstream, store: InMemoryLightningStore,
                                       client: httpx.AsyncClient, attempted: AttemptedRollout) -> None:
    proxy = LLMProxy([fake.url], store)
    await proxy.start()
    try:
        url = _url(proxy, attempted) + "/chat/completions"
        proxy.replace_backends([fake_b.url])
        assert (await client.post(url, json=CHAT)).status_code == 200
        assert len(fake.requests) == 0 and len(fake_b.requests) == 1
        proxy.add_backend(fake.url)
        proxy.remove_backend(fake_b.url)
        assert (await client.post(url, json=CHAT)).status_code == 200
        assert len(fake.requests) == 1
        proxy.remove_backend(fake.url)
        r = await client.post(url, json=CHAT)
        assert r.status_code == 502 and "no backend configured" in r.json()["error"]["message"]
    finally:
        await proxy.stop()


async def test_model_list_maps_names_and_defaults(fake: FakeUpstream, store: InMemoryLightningStore,
                                                  client: httpx.AsyncClient, attempted: AttemptedRollout) -> None:
    proxy = LLMProxy([fake.url], store, model_list={"policy": {"model": "smol",
                                                               "sampling_params": {"temperature": 0.7, "top_p": 0.9}}})
    await proxy.start()
    try:
        resource = proxy.as_resource()
        assert isinstance(resource, ProxyLLM) and resource.model == "policy"
        url = resource.with_attempted_rollout(attempted).endpoint
        data = (await client.post(url + "/chat/completions",
                                  json={"model": "policy", "messages": CHAT["messages"], "top_p": 0.5})).json()
        assert data["model"] == "policy"
        assert fake.requests[-1]["model"] == "smol" and fake.requests[-1]["temperature"] == 0.7
        assert fake.requests[-1]["top_p"] == 0.5  # the request's own value wins
        r = await client.post(url + "/chat/completions", json={**CHAT, "model": "other"})
        assert r.status_code == 404 and "'other'" in r.json()["error"]["message"]
        models = (await client.get(url + "/models")).json()
        assert [m["id"] for m in models["data"]] == ["policy"]
    finally:
        await proxy.stop()
    with pytest.raises(ValueError, match="unknown keys"):
        LLMProxy([fake.url], store, model_list={"p": {"temp": 1}})


async def test_as_resource_and_thread_mode(fake: FakeUpstream) -> None:
    from agentlightning.store import LightningStoreClient, LightningStoreServer

    memory = InMemoryLightningStore()
    server = LightningStoreServer(memory)
    server.start_in_thread()
    store = LightningStoreClient(server.url)
    proxy = LLMProxy([fake.url], store)
    try:
        with pytest.raises(RuntimeError, match="start"):
            proxy.as_resource(model="m")
        proxy.start_in_thread()
        await store.enqueue_rollout(input=1)
        attempted = await store.dequeue_rollout()
        resource = proxy.as_resource(model="m", sampling_parameters={"temperature": 0.5})
        assert resource.endpoint == f"{proxy.url}/v1" and resource.sampling_parameters == {"temperature": 0.5}
        url = resource.with_attempted_rollout(attempted).endpoint
        assert url == f"{proxy.url}/rollout/{attempted.rollout_id}/attempt/{attempted.attempt.attempt_id}/v1"

        def call() -> int:
            return httpx.post(url + "/chat/completions", json=CHAT, timeout=30).status_code

        assert await asyncio.to_thread(call) == 200
        (span,) = await store.query_spans(attempted.rollout_id)
        assert span.attributes["response_token_ids"] == WORD_IDS + [EOS]
    finally:
        proxy.stop_thread()
        await store.close()
        server.stop_thread()


async def test_proxy_and_store_bound_to_all_interfaces_publish_a_reachable_address(
        fake: FakeUpstream, store: InMemoryLightningStore) -> None:
    """For Ray runners on other nodes: bound to 0.0.0.0, the URLs handed out name this machine, not the wildcard."""
    from agentlightning.net import advertised_host, is_loopback
    from agentlightning.store import LightningStoreServer

    assert advertised_host("127.0.0.1") == "127.0.0.1" and advertised_host("0.0.0.0") not in ("0.0.0.0", "")
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    proxy = LLMProxy([fake.url], store, host="0.0.0.0")
    server = LightningStoreServer(store, host="0.0.0.0", token="secret")
    await proxy.start()
    await server.start()
    try:
        assert "0.0.0.0" not in proxy.as_resource(model="m").endpoint and "0.0.0.0" not in server.url
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            reply = await client.post(f"{proxy.base_url}/chat/completions",
                                      json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
            assert reply.status_code == 200
            assert (await client.post(f"{server.url}/rollouts/query", json={})).status_code == 401  # token needed
    finally:
        await server.stop()
        await proxy.stop()


UNUSABLE_REPLIES = {
    "html_page": (b"<html><body>502 Bad Gateway (nginx)</body></html>", "text/html", "not JSON"),
    "empty_body": (b"", "application/json", "not JSON"),
    "truncated_json": (b'{"id": "chatcmpl-x", "choices": [{"mess', "application/json", "not JSON"),
    "json_list": (b"[1, 2, 3]", "application/json", "not a JSON object"),
    "error_object": (b'{"error": {"message": "model is overloaded"}}', "application/json", "model is overloaded"),
    "choices_not_a_list": (b'{"id": "x", "choices": "nope"}', "application/json", "'choices'"),
    "no_choices": (b'{"id": "x", "choices": []}', "application/json", "'choices'"),
    "choice_not_an_object": (b'{"id": "x", "choices": [7]}', "application/json", "choices[0]"),
    "message_not_an_object": (b'{"id": "x", "choices": [{"message": "hi"}]}', "application/json", "message"),
}


@pytest.mark.parametrize("name", sorted(UNUSABLE_REPLIES))
async def test_unusable_upstream_reply_is_502_and_recorded_as_error(proxy: LLMProxy, fake: FakeUpstream,
                                                                    client: httpx.AsyncClient,
                                                                    store: InMemoryLightningStore,
                                                                    attempted: AttemptedRollout, name: str) -> None:
    """An upstream that answers 200 with something that is not a usable completion: the client gets a 502 that names
    the upstream and what was wrong, and the call is in the trace as an error span (it never vanishes)."""
    fake.raw_reply, fake.raw_content_type, needle = UNUSABLE_REPLIES[name]
    r = await client.post(_url(proxy, attempted) + "/chat/completions", json=CHAT)
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    message = error["message"]
    assert error["type"] == "upstream_error" and error["code"] == 502
    backend = normalize_backend_url(fake.url)
    assert backend in message and "HTTP 200" in message and needle in message, message
    assert "Fix:" in message
    (span,) = await store.query_spans(attempted.rollout_id)
    assert span.name == "llm.call" and span.status == "error"
    assert span.attributes["error"] == message and span.attributes["http_status"] == 502
    assert span.attributes["backend"] == backend and "response_token_ids" not in span.attributes
    assert span.attributes["request"]["messages"] == CHAT["messages"]
    assert proxy.pool.snapshot()[0]["failures"] == 1  # the replica is avoided for a while, like one answering 5xx
    assert proxy.pool.snapshot()[0]["outstanding"] == 0


async def test_unusable_reply_on_completions_and_plain_routes(proxy: LLMProxy, fake: FakeUpstream,
                                                             client: httpx.AsyncClient,
                                                             store: InMemoryLightningStore,
                                                             attempted: AttemptedRollout) -> None:
    fake.raw_reply, fake.raw_content_type = b"Service Unavailable", "text/plain"
    r = await client.post(_url(proxy, attempted) + "/completions", json={"model": "m", "prompt": "2+2="})
    assert r.status_code == 502 and "not JSON" in r.json()["error"]["message"]
    (span,) = await store.query_spans(attempted.rollout_id)
    assert span.status == "error" and span.attributes["endpoint"] == "completions"
    r = await client.post(proxy.base_url + "/chat/completions", json=CHAT)  # plain route: not recorded, still clear
    assert r.status_code == 502 and "not JSON" in r.json()["error"]["message"]
    fake.raw_reply, fake.raw_content_type = b'{"id": "x", "object": "text_completion", "choices": [{"text": 3}]}', \
        "application/json"
    r = await client.post(_url(proxy, attempted) + "/completions", json={"model": "m", "prompt": "2+2="})
    assert r.status_code == 502 and "choices[0]" in r.json()["error"]["message"]
    assert [s.status for s in await store.query_spans(attempted.rollout_id)] == ["error", "error"]
    fake.raw_reply = None  # the upstream recovers: calls go through and are recorded as ok again
    r = await client.post(_url(proxy, attempted) + "/chat/completions", json=CHAT)
    assert r.status_code == 200
    assert [s.status for s in await store.query_spans(attempted.rollout_id)] == ["error", "error", "ok"]


async def test_unusable_stream_chunk_is_recorded_as_error(proxy: LLMProxy, fake: FakeUpstream,
                                                          client: httpx.AsyncClient, store: InMemoryLightningStore,
                                                          attempted: AttemptedRollout) -> None:
    fake.raw_reply, fake.raw_content_type = b"data: {not json\n\n", "text/event-stream"
    async with client.stream("POST", _url(proxy, attempted) + "/chat/completions",
                             json={**CHAT, "stream": True}) as response:
        lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    error = json.loads(lines[-1][6:])["error"]
    assert error["code"] == 502 and normalize_backend_url(fake.url) in error["message"]
    for _ in range(100):  # a streamed call's span is written just after the stream ends
        spans = await store.query_spans(attempted.rollout_id)
        if spans:
            break
        await asyncio.sleep(0.02)
    (span,) = spans
    assert span.status == "error" and span.attributes["error"] == error["message"]
