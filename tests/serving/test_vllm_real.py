"""The real path: one vLLM server (session fixture) on the default model, behind the LLM proxy.

Checks exact token IDs (against the HF tokenizer and HF greedy generation), the clients agents actually use
(openai, LangChain ChatOpenAI, LiteLLM) through a ProxyLLM URL, tool calls (hermes parser), streaming, replica
failover through killable TCP forwarders in front of the same vLLM (down to "all replicas dead"), and a second real
replica started with `agl vllm serve` and SIGKILLed mid-run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fakes import SERVED_NAME, TcpForwarder

from agentlightning.proxy import LLMProxy
from agentlightning.store import InMemoryLightningStore
from agentlightning.types import AttemptedRollout

pytestmark = pytest.mark.vllm

MESSAGES = [{"role": "user", "content": "What is 2+2? Answer with one number."}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
# SmolLM2's chat template ignores `tools`, so show it the hermes format once (few-shot); it then emits <tool_call>.
TOOL_MESSAGES = [
    {"role": "system", "content": 'Answer only with a tool call like <tool_call>{"name": "get_weather", '
                                  '"arguments": {"city": "Rome"}}</tool_call>'},
    {"role": "user", "content": "Weather in Rome?"},
    {"role": "assistant", "content": '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>'},
    {"role": "user", "content": "Weather in Paris?"},
]


@pytest.fixture
async def proxy(vllm_server: Any, store: InMemoryLightningStore) -> AsyncIterator[LLMProxy]:
    p = LLMProxy([vllm_server.base_url], store)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
def llm_url(proxy: LLMProxy, attempted: AttemptedRollout) -> str:
    return proxy.as_resource(model=SERVED_NAME).with_attempted_rollout(attempted).endpoint


@pytest.fixture(scope="module")
def tokenizer(vllm_server: Any) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(vllm_server.model)


def _ids(encoded: Any) -> list[int]:
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


async def _spans(store: InMemoryLightningStore, attempted: AttemptedRollout) -> list[Any]:
    return await store.query_spans(attempted.rollout_id, attempted.attempt.attempt_id)


async def test_direct_vllm_returns_token_ids(vllm_server: Any, tokenizer: Any) -> None:
    async with httpx.AsyncClient(base_url=vllm_server.base_url, timeout=60) as client:
        chat = (await client.post("/chat/completions", json={
            "model": SERVED_NAME, "messages": MESSAGES, "max_tokens": 8, "temperature": 0,
            "return_token_ids": True})).json()
        completion = (await client.post("/completions", json={
            "model": SERVED_NAME, "prompt": "2+2=", "max_tokens": 4, "temperature": 0, "return_token_ids": True})).json()
    expected = _ids(tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True))
    assert chat["prompt_token_ids"] == expected
    assert len(chat["choices"][0]["token_ids"]) == chat["usage"]["completion_tokens"]
    assert completion["choices"][0]["prompt_token_ids"] == _ids(tokenizer("2+2="))
    assert len(completion["choices"][0]["token_ids"]) == 4


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("endpoint", ["chat", "completions"])
async def test_proxy_records_token_ids(llm_url: str, store: InMemoryLightningStore, attempted: AttemptedRollout,
                                       tokenizer: Any, stream: bool, endpoint: str) -> None:
    body: dict[str, Any] = {"model": SERVED_NAME, "max_tokens": 8, "temperature": 0, "stream": stream}
    if endpoint == "chat":
        body["messages"], path, expected_prompt = MESSAGES, "/chat/completions", _ids(
            tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True))
    else:
        body["prompt"], path, expected_prompt = "The capital of France is", "/completions", _ids(
            tokenizer("The capital of France is"))
    text = ""
    async with httpx.AsyncClient(timeout=60) as client:
        if stream:
            async with client.stream("POST", llm_url + path, json=body) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line.startswith("data: {"):
                        for choice in json.loads(line[6:])["choices"]:
                            text += (choice.get("delta", {}).get("content") or "") if endpoint == "chat" \
                                else choice["text"]
                            assert "token_ids" not in choice
        else:
            data = (await client.post(llm_url + path, json=body)).json()
            choice = data["choices"][0]
            text = choice["message"]["content"] if endpoint == "chat" else choice["text"]
            assert "token_ids" not in choice and "prompt_token_ids" not in data
    (span,) = await _spans(store, attempted)
    a = span.attributes
    assert span.status == "ok" and a["stream"] is stream
    assert a["prompt_token_ids"] == expected_prompt
    assert 1 <= len(a["response_token_ids"]) <= 8
    assert a["response"]["text"] == text
    assert tokenizer.decode(a["response_token_ids"], skip_special_tokens=True) == text


async def test_greedy_ids_equal_hf_generate(llm_url: str, store: InMemoryLightningStore,
                                            attempted: AttemptedRollout, vllm_server: Any, tokenizer: Any) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.post(llm_url + "/chat/completions",
                              json={"model": SERVED_NAME, "messages": MESSAGES, "max_tokens": 12, "temperature": 0})
    assert r.status_code == 200
    (span,) = await _spans(store, attempted)
    prompt, vllm_ids = span.attributes["prompt_token_ids"], span.attributes["response_token_ids"]
    # HF in the dtype the server runs (float32 on CPU, see VLLMServer): the same weights, the same arithmetic width
    dtype = "auto" if vllm_server.dtype == "auto" else getattr(torch, vllm_server.dtype)
    model = AutoModelForCausalLM.from_pretrained(vllm_server.model, dtype=dtype)
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False,
                             attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
    hf_ids = out[0, len(prompt):].tolist()
    assert vllm_ids == hf_ids[: len(vllm_ids)] and len(vllm_ids) >= 1


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("endpoint", ["chat", "completions"])
async def test_requested_logprobs_are_recorded_one_per_response_token(
        vllm_server: Any, store: InMemoryLightningStore, attempted: AttemptedRollout, stream: bool,
        endpoint: str) -> None:
    """What training reads as the sampler's logprobs (π_old in verl's bypass mode): one per response token id, EOS
    included, recorded even though the client did not ask for logprobs (and stripped from its answer)."""
    proxy = LLMProxy([vllm_server.base_url], store, request_logprobs=True)
    await proxy.start()
    try:
        url = proxy.as_resource(model=SERVED_NAME).with_attempted_rollout(attempted).endpoint
        body: dict[str, Any] = {"model": SERVED_NAME, "max_tokens": 8, "temperature": 1.0, "stream": stream}
        if endpoint == "chat":
            body["messages"], path = MESSAGES, "/chat/completions"
        else:
            body["prompt"], path = "The capital of France is", "/completions"
        async with httpx.AsyncClient(timeout=60) as client:
            if stream:
                async with client.stream("POST", url + path, json=body) as response:
                    lines = [line async for line in response.aiter_lines() if line.startswith("data: {")]
                    assert response.status_code == 200
                    assert all(not (c.get("logprobs")) for line in lines for c in json.loads(line[6:])["choices"])
            else:
                response = await client.post(url + path, json=body)
                assert response.status_code == 200 and not response.json()["choices"][0].get("logprobs")
    finally:
        await proxy.stop()
    (span,) = await _spans(store, attempted)
    ids, logprobs = span.attributes["response_token_ids"], span.attributes["logprobs"]
    assert len(logprobs) == len(ids) >= 1 and all(lp <= 0.0 for lp in logprobs)


async def test_openai_langchain_litellm_through_proxy_llm(llm_url: str, store: InMemoryLightningStore,
                                                          attempted: AttemptedRollout) -> None:
    import litellm
    import openai
    from langchain_openai import ChatOpenAI

    client = openai.AsyncOpenAI(base_url=llm_url, api_key="unused")
    reply = await client.chat.completions.create(model=SERVED_NAME, messages=MESSAGES, max_tokens=6)  # type: ignore[arg-type]
    assert reply.choices[0].message.content
    completion = await client.completions.create(model=SERVED_NAME, prompt="Hello", max_tokens=4)
    assert completion.choices[0].text is not None
    chunks = [c async for c in await client.chat.completions.create(
        model=SERVED_NAME, messages=MESSAGES, max_tokens=6, stream=True)]  # type: ignore[arg-type]
    assert chunks

    chat = ChatOpenAI(base_url=llm_url, api_key="unused", model=SERVED_NAME, max_tokens=6, temperature=0)
    message = await chat.ainvoke("Say hi")
    assert isinstance(message.content, str)

    litellm.telemetry = False
    result = await litellm.acompletion(model=f"openai/{SERVED_NAME}", api_base=llm_url, api_key="unused",
                                       messages=MESSAGES, max_tokens=6)
    assert result.choices[0].message.content is not None

    spans = await _spans(store, attempted)
    assert len(spans) == 5
    assert [s.sequence_id for s in spans] == [1, 2, 3, 4, 5]
    for span in spans:
        assert span.status == "ok" and span.rollout_id == attempted.rollout_id
        assert span.attempt_id == attempted.attempt.attempt_id
        assert span.attributes["prompt_token_ids"] and span.attributes["response_token_ids"]
    assert spans[2].attributes["stream"] is True


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_call_round_trip_hermes(llm_url: str, store: InMemoryLightningStore, attempted: AttemptedRollout,
                                           stream: bool) -> None:
    import openai

    client = openai.AsyncOpenAI(base_url=llm_url, api_key="unused")
    kwargs: dict[str, Any] = dict(model=SERVED_NAME, messages=TOOL_MESSAGES, tools=TOOLS, tool_choice="auto",
                                  max_tokens=40, temperature=0)
    if stream:
        calls: dict[int, dict[str, str]] = {}
        async for chunk in await client.chat.completions.create(stream=True, **kwargs):
            for choice in chunk.choices:
                for delta in choice.delta.tool_calls or ():
                    slot = calls.setdefault(delta.index, {"name": "", "arguments": ""})
                    slot["name"] += (delta.function and delta.function.name) or ""
                    slot["arguments"] += (delta.function and delta.function.arguments) or ""
        name, arguments = calls[0]["name"], calls[0]["arguments"]
    else:
        reply = await client.chat.completions.create(**kwargs)
        call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
        name, arguments = call.function.name, call.function.arguments  # type: ignore[union-attr]
        assert reply.choices[0].finish_reason == "tool_calls"
    assert name == "get_weather" and json.loads(arguments) == {"city": "Paris"}
    (span,) = await _spans(store, attempted)
    recorded = span.attributes["response"]["tool_calls"][0]["function"]
    assert recorded["name"] == "get_weather" and json.loads(recorded["arguments"]) == {"city": "Paris"}
    assert span.attributes["request"]["tools"] == TOOLS
    assert span.attributes["response_token_ids"][-1] == 2  # EOS ends the raw <tool_call>...</tool_call> ids


async def test_errors_on_real_proxy(vllm_server: Any, store: InMemoryLightningStore,
                                    attempted: AttemptedRollout) -> None:
    proxy = LLMProxy([vllm_server.base_url], store, api_key="k")
    await proxy.start()
    try:
        url = proxy.as_resource(model=SERVED_NAME).with_attempted_rollout(attempted).endpoint + "/chat/completions"
        auth = {"Authorization": "Bearer k"}
        body = {"model": SERVED_NAME, "messages": MESSAGES, "max_tokens": 2}
        async with httpx.AsyncClient(timeout=60) as client:
            assert (await client.post(url, json=body)).status_code == 401
            r = await client.post(f"{proxy.url}/rollout/ro-x/attempt/at-x/v1/chat/completions", json=body,
                                  headers=auth)
            assert r.status_code == 404 and "ro-x" in r.text
            r = await client.post(url, content=b'{"model": 1', headers=auth)
            assert r.status_code == 400 and "not valid JSON" in r.text
            r = await client.post(url, json={**body, "max_tokens": -5}, headers=auth)  # vLLM's own validation
            assert r.status_code == 400
            assert (await client.post(url, json=body, headers=auth)).status_code == 200
        statuses = [s.status for s in await _spans(store, attempted)]
        assert statuses == ["error", "ok"]  # the vLLM-rejected call is recorded as an error, never as a success
    finally:
        await proxy.stop()


async def test_two_replicas_failover_then_all_down(vllm_server: Any, store: InMemoryLightningStore,
                                                   attempted: AttemptedRollout) -> None:
    first = await TcpForwarder(vllm_server.port).start()
    second = await TcpForwarder(vllm_server.port).start()
    proxy = LLMProxy([first.url, second.url], store, num_retries=2)
    await proxy.start()
    try:
        url = proxy.as_resource(model=SERVED_NAME).with_attempted_rollout(attempted).endpoint + "/chat/completions"
        body = {"model": SERVED_NAME, "messages": MESSAGES, "max_tokens": 16, "temperature": 0}
        async with httpx.AsyncClient(timeout=120) as client:
            async def call() -> int:
                return (await client.post(url, json=body)).status_code

            first_wave = [asyncio.create_task(call()) for _ in range(4)]
            await asyncio.sleep(0.15)  # calls are in flight on both replicas
            await first.kill()
            statuses = await asyncio.gather(*first_wave, *[call() for _ in range(4)])
            assert statuses == [200] * 8
            assert first.connections >= 1 and second.connections >= 1
            await second.kill()
            r = await client.post(url, json=body)
            assert r.status_code == 502
            assert "ConnectError" in r.json()["error"]["message"] and first.url[:-3] in r.json()["error"]["message"]
        spans = await _spans(store, attempted)
        assert [s.status for s in spans].count("ok") == 8
        assert spans[-1].status == "error" and "response_token_ids" not in spans[-1].attributes
        assert all(s.attributes["response_token_ids"] for s in spans if s.status == "ok")
    finally:
        await proxy.stop()


async def test_agl_proxy_process_records_into_a_store_server(vllm_server: Any) -> None:
    """`agl proxy --backend vLLM --store URL` as its own process: a call under a rollout/attempt URL lands in the
    store server as a span with token IDs and logprobs (--request-logprobs)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from agentlightning.serving import find_free_port
    from agentlightning.store import LightningStoreServer

    store = InMemoryLightningStore()
    server = LightningStoreServer(store, token="t0k")
    await server.start()
    await store.enqueue_rollout(input={"task": "proxy process"})
    attempted = await store.dequeue_rollout(worker_id="w1")
    port = find_free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "agentlightning.cli.main", "proxy", "--backend",
                             vllm_server.base_url, "--store", server.url, "--store-token", "t0k", "--port", str(port),
                             "--request-logprobs"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/rollout/{attempted.rollout_id}/attempt/{attempted.attempt.attempt_id}/v1"
        async with httpx.AsyncClient(timeout=60, trust_env=False) as client:
            for _ in range(200):
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/v1/models")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            reply = await client.post(url + "/chat/completions", json={"model": SERVED_NAME, "messages": MESSAGES,
                                                                        "max_tokens": 8, "temperature": 0})
        assert reply.status_code == 200, reply.text
        (span,) = await store.query_spans(attempted.rollout_id, attempted.attempt.attempt_id)
        assert span.attributes["prompt_token_ids"] and span.attributes["response_token_ids"]
        assert len(span.attributes["logprobs"]) == len(span.attributes["response_token_ids"])
    finally:
        proc.terminate()
        proc.wait(30)
        await server.stop()


@pytest.mark.slow
async def test_agl_vllm_serve_replica_killed_mid_run(vllm_server: Any, store: InMemoryLightningStore,
                                                     attempted: AttemptedRollout, tmp_path: Any) -> None:
    """Two real replicas: the session server and a second vLLM started by `agl vllm serve MODEL [vLLM flags]` (flags
    passed through, loopback by default). Both serve calls through the proxy; SIGKILL of the second's whole process
    tree mid-run: in-flight and later calls finish on the first, and every success is recorded with token IDs."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from agentlightning.serving import find_free_port

    port = find_free_port()
    log = (tmp_path / "replica.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "agentlightning.cli.main", "vllm", "serve", vllm_server.model,
                             "--port", str(port), "--served-model-name", SERVED_NAME, "--max-model-len", "1024"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    second = f"http://127.0.0.1:{port}/v1"
    proxy = LLMProxy([vllm_server.base_url, second], store, num_retries=2)
    try:
        deadline = time.monotonic() + 300
        async with httpx.AsyncClient(timeout=120, trust_env=False) as client:
            while (await _health(client, port)) != 200:
                assert proc.poll() is None, (tmp_path / "replica.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "agl vllm serve did not become healthy within 300 s"
                await asyncio.sleep(1)
            await proxy.start()
            url = proxy.as_resource(model=SERVED_NAME).with_attempted_rollout(attempted).endpoint + "/chat/completions"
            body = {"model": SERVED_NAME, "messages": MESSAGES, "max_tokens": 16, "temperature": 0}

            async def call() -> int:
                return (await client.post(url, json=body)).status_code

            assert await asyncio.gather(*[call() for _ in range(4)]) == [200] * 4  # balanced over both replicas
            wave = [asyncio.create_task(call()) for _ in range(6)]
            await asyncio.sleep(0.3)  # in flight on both
            os.killpg(proc.pid, signal.SIGKILL)
            statuses = await asyncio.gather(*wave, *[call() for _ in range(4)])
        assert statuses == [200] * 10
        spans = await _spans(store, attempted)
        ok = [s for s in spans if s.status == "ok"]
        assert len(ok) == 14 and all(s.attributes["response_token_ids"] for s in ok)
        assert {s.attributes["backend"] for s in ok[:4]} == {vllm_server.base_url.removesuffix("/v1"),
                                                             second.removesuffix("/v1")}
    finally:
        await proxy.stop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()


async def _health(client: httpx.AsyncClient, port: int) -> int:
    try:
        return (await client.get(f"http://127.0.0.1:{port}/health")).status_code
    except httpx.HTTPError:
        return 0
