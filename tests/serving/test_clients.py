"""agentlightning.clients: per-rollout OpenAI/LangChain clients on one shared connection pool (against FakeUpstream,
a scripted OpenAI-compatible server)."""

from __future__ import annotations

import asyncio
import threading
import time

from agentlightning.clients import (
    async_openai,
    chat_openai,
    shared_async_http_client,
    shared_http_client,
    sync_openai,
)
from agentlightning.types import LLM
from tests.serving.fakes import FakeUpstream


async def test_per_rollout_async_clients_share_one_pool_that_closing_leaves_open(fake: FakeUpstream) -> None:
    llm = LLM(endpoint=fake.url, model="m", api_key="k")
    replies = []
    for _ in range(3):  # one client per "rollout", closed at its end as agents do
        client = async_openai(llm, max_retries=0)
        assert client._client is shared_async_http_client()
        async with client:
            reply = await client.chat.completions.create(model=llm.model, messages=[{"role": "user", "content": "hi"}])
        replies.append(reply.choices[0].message.content)
    assert replies == ["Hello from fake"] * 3 and len(fake.requests) == 3
    assert not shared_async_http_client().is_closed, "closing one rollout's client must not close the shared pool"

    started = time.perf_counter()
    for _ in range(100):
        async_openai(llm)
    assert time.perf_counter() - started < 1.0  # (a fresh openai.AsyncOpenAI: ~41 ms each on a 2-core machine)


async def test_each_event_loop_gets_its_own_async_pool() -> None:
    here = shared_async_http_client()
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(asyncio.run(_pool())))
    thread.start()
    thread.join()
    assert other and other[0] is not here and shared_async_http_client() is here


async def _pool() -> object:
    return shared_async_http_client()


async def test_sync_and_langchain_clients_use_the_shared_pools(fake: FakeUpstream) -> None:
    llm = LLM(endpoint=fake.url, model="m")
    client = sync_openai(llm, max_retries=0)
    assert client._client is shared_http_client()
    reply = await asyncio.to_thread(
        client.chat.completions.create, model="m", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Hello from fake"
    client.close()
    assert not shared_http_client().is_closed

    model = chat_openai(llm, temperature=0.2, max_retries=0)
    assert model.http_async_client is shared_async_http_client() and model.http_client is shared_http_client()
    assert (await model.ainvoke("hi")).content == "Hello from fake"
    assert fake.requests[-1]["temperature"] == 0.2

    outside_loop = await asyncio.to_thread(chat_openai, llm)  # a worker thread (sync agents): no running loop
    assert outside_loop.http_client is shared_http_client() and outside_loop.http_async_client is None
