"""OpenAI-compatible clients for an `LLM` resource, cheap enough to build once per rollout.

Where this sits: runner → **agent** → proxy → vLLM. Each rollout's `LLM` has its own base URL (the proxy's
`/rollout/{rid}/attempt/{aid}/v1`), so agents build a client per rollout. Built the usual way that is expensive:
every `openai.AsyncOpenAI(...)` makes a new httpx client with its own TLS context and connection pool, and every
`langchain_openai.ChatOpenAI(...)` makes two (measured on the 2-core CI machine: 41 ms and 160 ms of CPU each, on the
runner's event loop, so 16 episodes starting together wait ~0.7 s before their first model call, and every new
client opens new TCP connections to the proxy). The functions here build the same client objects on one shared
connection pool per event loop (sync clients: per process), which costs ~0.1 ms:

    from agentlightning.clients import async_openai
    client = async_openai(llm)                       # an openai.AsyncOpenAI on llm.get_base_url()
    reply = await client.chat.completions.create(model=llm.model, messages=[...])

`sync_openai(llm)` is the `openai.OpenAI` twin for sync agents; `chat_openai(llm, temperature=0.2)` is a
`langchain_openai.ChatOpenAI` for LangChain/LangGraph agents. Keyword arguments go to the client's constructor
(`timeout`, `max_retries`, ...). Closing such a client (`await client.close()`, `async with`) is allowed and leaves
the shared pool open for the other rollouts; the pool lives as long as its event loop (or process).

These clients also keep the trace in order: before a model call to an attempt's proxy URL leaves, it waits for that
attempt's spans that have ended (a reward, a tool call) to be stored, so they are numbered before the call's
`llm.call` span (`agentlightning.tracer.settle_spans_before`; usually there is nothing to wait for).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import threading
import weakref
from typing import TYPE_CHECKING, Any

import httpx
import openai

from agentlightning.tracer import settle_spans_before, settle_spans_before_blocking
from agentlightning.types import LLM

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

__all__ = ["async_openai", "chat_openai", "shared_async_http_client", "shared_http_client", "sync_openai", "warm_up"]


class _SharedAsyncClient(openai.DefaultAsyncHttpxClient):
    """openai's default async httpx client (its timeouts and limits) that per-rollout clients cannot close. A model
    call to an attempt's proxy URL first waits for that attempt's ended spans to be stored, so they are numbered
    before the call (`agentlightning.tracer.settle_spans_before`; nothing to wait for most of the time)."""

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        await settle_spans_before(request.url.path)
        return await super().send(request, **kwargs)

    async def aclose(self) -> None:  # the pool outlives each rollout's client
        return None


class _SharedClient(openai.DefaultHttpxClient):
    """openai's default sync httpx client that per-rollout clients cannot close (orders spans as the async one)."""

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        settle_spans_before_blocking(request.url.path)
        return super().send(request, **kwargs)

    def close(self) -> None:
        return None


_async_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SharedAsyncClient] = weakref.WeakKeyDictionary()
_sync_pool: list[_SharedClient] = []
_lock = threading.Lock()


def shared_async_http_client() -> httpx.AsyncClient:
    """The running event loop's shared httpx pool (an httpx client is bound to the loop that opened its
    connections, so each loop gets its own). Raises RuntimeError outside a running loop."""
    loop = asyncio.get_running_loop()
    with _lock:
        client = _async_pools.get(loop)
        if client is None:
            client = _async_pools[loop] = _SharedAsyncClient(verify=_tls())
        return client


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's CAs), made once per process: loading the CA file takes ~50 ms, which
    a new pool would otherwise spend on the event loop its episodes share."""
    return httpx.create_ssl_context()


def shared_http_client() -> httpx.Client:
    """The process's shared sync httpx pool (httpx's sync client may be used from several threads)."""
    with _lock:
        if not _sync_pool:
            _sync_pool.append(_SharedClient(verify=_tls()))
        return _sync_pool[0]


def async_openai(llm: LLM, **kwargs: Any) -> openai.AsyncOpenAI:
    """`openai.AsyncOpenAI` on `llm`'s base URL and key, on the loop's shared pool. Call it inside the agent's
    coroutine (it needs the running loop)."""
    return openai.AsyncOpenAI(base_url=llm.get_base_url(), api_key=llm.api_key or "none",
                              http_client=shared_async_http_client(), **kwargs)


def sync_openai(llm: LLM, **kwargs: Any) -> openai.OpenAI:
    """`openai.OpenAI` on `llm`'s base URL and key, on the process's shared pool (for sync agents)."""
    return openai.OpenAI(base_url=llm.get_base_url(), api_key=llm.api_key or "none",
                         http_client=shared_http_client(), **kwargs)


def chat_openai(llm: LLM, **kwargs: Any) -> ChatOpenAI:
    """`langchain_openai.ChatOpenAI` for `llm` (base URL, key, model) on the shared pools: the async pool of the
    running loop when called inside one (LangGraph's `ainvoke`), and the process's sync pool (`invoke`). An async
    graph must build its model inside the loop that runs it."""
    from langchain_openai import ChatOpenAI

    try:
        kwargs.setdefault("http_async_client", shared_async_http_client())
    except RuntimeError:  # no running loop: ainvoke from another loop would build its own client
        pass
    kwargs.setdefault("http_client", shared_http_client())
    return ChatOpenAI(base_url=llm.get_base_url(), api_key=llm.api_key or "none", model=llm.model, **kwargs)


def warm_up() -> None:
    """Do what an episode's first model call would do once per process: import openai's resource modules (~500
    modules, 0.5 s of CPU on this machine) and load the TLS context of the shared pools. The runner calls it on a
    worker thread before it starts episodes, so that this does not stall the loop they share."""
    _tls()
    _ = openai.AsyncOpenAI(api_key="none", base_url="http://127.0.0.1:9/v1").chat.completions
