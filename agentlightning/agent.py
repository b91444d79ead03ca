"""Writing an agent: subclass `LitAgent`, or decorate a plain function with `@rollout`.

Where this sits: store → runner → **agent** → proxy → vLLM. The runner claims a rollout, resolves the resources it
names, and calls the agent with the task. The agent only needs an OpenAI-compatible URL: when the resource is a
`ProxyLLM`, it receives an `LLM` already bound to `/rollout/{rid}/attempt/{aid}/v1`, so the openai SDK, LangChain,
LangGraph, LiteLLM or MCP-based tools work unchanged and every call is recorded with its token IDs.

    from agentlightning import LLM, rollout
    from agentlightning.clients import async_openai

    @rollout
    async def solve(task: dict, llm: LLM) -> float:
        client = async_openai(llm)  # = openai.AsyncOpenAI(base_url=llm.get_base_url(), ...) on a shared pool
        answer = await client.chat.completions.create(model=llm.model, messages=[...])
        return 1.0 if check(answer, task) else 0.0        # or call emit_reward(...) yourself and return None

A returned number is emitted as the final reward (`emit_reward`); `None` means the agent emitted its own rewards.
Sync and async functions both work. Sync ones run in threads: the runner gives them `max_concurrency` threads of
their own (`agent_threads`; asyncio's default pool has min(32, cpus + 4), 6 on 2 cores), and on shutdown it does
not wait for them: a thread cannot be interrupted, and the rollout it was running has already been given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agentlightning.types import LLM, AttemptedRollout, NamedResources, ProxyLLM

__all__ = ["AGENT_THREAD_PREFIX", "FunctionAgent", "LitAgent", "agent_threads", "live_agent_threads", "resolve_llm",
           "rollout"]

AGENT_THREAD_PREFIX = "agl-agent"
_THREADS: contextvars.ContextVar[ThreadPoolExecutor | None] = contextvars.ContextVar("agl_agent_threads",
                                                                                     default=None)


@contextlib.contextmanager
def agent_threads(n: int) -> Iterator[ThreadPoolExecutor]:
    """Sync agents started in this context (and the tasks it creates) run on `n` threads of their own. On exit the
    pool is shut down without waiting: threads still in a cancelled agent finish on their own (or die with the
    process; `live_agent_threads` counts them)."""
    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix=AGENT_THREAD_PREFIX)
    token = _THREADS.set(pool)
    try:
        yield pool
    finally:
        _THREADS.reset(token)
        pool.shutdown(wait=False, cancel_futures=True)


def live_agent_threads() -> int:
    """How many sync-agent threads are still alive (e.g. a cancelled agent still inside `time.sleep`)."""
    return sum(t.is_alive() and t.name.startswith(AGENT_THREAD_PREFIX) for t in threading.enumerate())


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` on the runner's agent threads (asyncio's default pool outside a runner), in a copy of the caller's
    context like `asyncio.to_thread`, so `emit_*` calls inside find their attempt."""
    call = functools.partial(contextvars.copy_context().run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(_THREADS.get(), call)


def resolve_llm(resources: NamedResources, rollout: AttemptedRollout, name: str | None = None) -> LLM:
    """The LLM resource an agent should use, bound to the rollout's attempt when it is a `ProxyLLM`."""
    llms = {key: value for key, value in resources.items() if isinstance(value, LLM)}
    if name is not None:
        if name not in llms:
            raise KeyError(f"resource {name!r} is not an LLM among the published resources {sorted(resources)}; "
                           f"LLMs: {sorted(llms)}")
        chosen = llms[name]
    elif len(llms) == 1:
        chosen = next(iter(llms.values()))
    elif "main_llm" in llms:
        chosen = llms["main_llm"]
    else:
        raise KeyError(f"cannot tell which LLM to use among {sorted(llms) or 'none'}; publish exactly one, name one "
                       "'main_llm', or pass llm_resource=... to @rollout")
    return chosen.with_attempted_rollout(rollout) if isinstance(chosen, ProxyLLM) else chosen


class LitAgent:
    """Base class of agents. Override `training_rollout` (and `validation_rollout` if validation differs).

    Both receive the task (`rollout.input`), the resolved resources, and the attempted rollout; both may be sync or
    async and return a float reward or None (rewards emitted with `emit_reward`).
    """

    def training_rollout(self, task: Any, resources: NamedResources, rollout: AttemptedRollout) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement training_rollout(task, resources, rollout)")

    def validation_rollout(self, task: Any, resources: NamedResources, rollout: AttemptedRollout) -> Any:
        return self.training_rollout(task, resources, rollout)

    async def run(self, rollout: AttemptedRollout, resources: NamedResources) -> float | None:
        """Run the right rollout method for the rollout's mode; returns its reward (float or None)."""
        method = self.training_rollout if rollout.mode in (None, "train") else self.validation_rollout
        if inspect.iscoroutinefunction(method):
            result = await method(rollout.input, resources, rollout)
        else:
            result = await _in_thread(method, rollout.input, resources, rollout)
            if inspect.isawaitable(result):
                result = await result
        if result is not None and (isinstance(result, bool) or not isinstance(result, int | float)):
            raise TypeError(f"{type(self).__name__} returned {result!r}; an agent returns a float reward or None "
                            "(and emits named rewards with emit_reward)")
        return None if result is None else float(result)


class FunctionAgent(LitAgent):
    """A `LitAgent` around a function `(task, llm)` or `(task, llm, rollout)` (what `@rollout` builds)."""

    def __init__(self, fn: Callable[..., Any], llm_resource: str | None = None) -> None:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(params) not in (2, 3):
            raise TypeError(f"@rollout function {fn.__qualname__}{inspect.signature(fn)} must take (task, llm) or "
                            "(task, llm, rollout)")
        self.fn, self.llm_resource, self._wants_rollout = fn, llm_resource, len(params) == 3
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def training_rollout(self, task: Any, resources: NamedResources, rollout: AttemptedRollout) -> Any:
        llm = resolve_llm(resources, rollout, self.llm_resource)
        return self.fn(task, llm, rollout) if self._wants_rollout else self.fn(task, llm)

    async def run(self, rollout: AttemptedRollout, resources: NamedResources) -> float | None:
        if inspect.iscoroutinefunction(self.fn):  # call it on the loop, not in a thread
            llm = resolve_llm(resources, rollout, self.llm_resource)
            args = (rollout.input, llm, rollout) if self._wants_rollout else (rollout.input, llm)
            result = await self.fn(*args)
            if result is not None and (isinstance(result, bool) or not isinstance(result, int | float)):
                raise TypeError(f"{self.fn.__qualname__} returned {result!r}; return a float reward or None")
            return None if result is None else float(result)
        return await super().run(rollout, resources)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


def rollout(fn: Callable[..., Any] | None = None, *, llm_resource: str | None = None) -> Any:
    """Decorator: `@rollout` or `@rollout(llm_resource="policy")` turns a function into a `LitAgent`."""
    if fn is None:
        return lambda f: FunctionAgent(f, llm_resource)
    return FunctionAgent(fn, llm_resource)
