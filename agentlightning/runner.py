"""Runners: workers that claim rollouts from the store, run the agent under the tracer, and report the attempt.

Where this sits: task → store → **runner** → agent → proxy → vLLM → spans. One worker loop:

    dequeue_rollout → attempt `running` → resources (by the rollout's resources_id, else the latest)
      → agent.run(...) inside tracer.trace_attempt, heartbeating every `heartbeat_seconds`
      → reward returned? emit_reward → attempt `succeeded`
      → exception? emit_exception + attempt `failed` with the traceback in its metadata
      → over `timeout_seconds`? attempt `timeout` (the store requeues it per RolloutConfig)

`RunnerPool` runs `n_runners` such loops in worker processes (`backend="process"`, spawned, talking to the store
over HTTP) or as Ray actors (`backend="ray"`, so runners can live on other nodes of a Ray cluster). The agent travels
to workers with cloudpickle, so lambdas and notebook-defined agents work. Shutdown (SIGINT/SIGTERM or `stop()`):
each worker cancels its agent, puts its claimed rollout back in the queue, and exits; the pool then terminates and,
failing that, kills what is left — no orphans, no rollout claimed forever. A worker process that dies (even by
SIGKILL) stops heartbeating: the store marks its attempt `unresponsive` after `unresponsive_seconds` and requeues it,
and the pool starts a replacement worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import multiprocessing as mp
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Literal

import cloudpickle

from agentlightning.agent import LitAgent
from agentlightning.emitter import emit_exception, emit_reward
from agentlightning.store.base import InvalidTransitionError, LightningStore, NotFoundError
from agentlightning.tracer import Tracer
from agentlightning.types import AttemptedRollout, NamedResources

__all__ = ["RunnerConfig", "RunnerPool", "run_rollout", "worker_loop"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerConfig:
    """poll_seconds: wait between empty dequeues; heartbeat_seconds: liveness ping while an agent runs;
    exit_when_idle_seconds: leave the loop after this long with nothing queued (None: run until stopped)."""

    poll_seconds: float = 0.2
    heartbeat_seconds: float = 2.0
    exit_when_idle_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("poll_seconds", "heartbeat_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"RunnerConfig.{name}={getattr(self, name)} must be > 0")


async def _heartbeat(store: LightningStore, rollout: AttemptedRollout, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        with contextlib.suppress(Exception):
            await store.update_attempt(rollout.rollout_id, rollout.attempt.attempt_id, heartbeat=True)


async def _resources(store: LightningStore, rollout: AttemptedRollout, cache: dict[str, NamedResources]
                     ) -> NamedResources:
    if rollout.resources_id is None:
        latest = await store.get_latest_resources()
        if latest is None:
            raise LookupError(f"rollout {rollout.rollout_id} names no resources and none are published. Fix: "
                              "store.add_resources({'main_llm': LLM(...)}) before enqueueing (the Trainer does this)")
        cache[latest.resources_id] = latest.resources
        return latest.resources
    if rollout.resources_id not in cache:
        cache[rollout.resources_id] = (await store.get_resources_by_id(rollout.resources_id)).resources
    return cache[rollout.resources_id]


async def _report(store: LightningStore, rollout: AttemptedRollout, status: Any, metadata: dict[str, Any] | None
                  ) -> None:
    try:
        await store.update_attempt(rollout.rollout_id, rollout.attempt.attempt_id, status=status, metadata=metadata)
    except (InvalidTransitionError, NotFoundError) as exc:  # e.g. cancelled meanwhile: the store has the last word
        logger.info("rollout %s: could not record %s (%s)", rollout.rollout_id, status, exc)


async def run_rollout(store: LightningStore, agent: LitAgent, rollout: AttemptedRollout, tracer: Tracer,
                      config: RunnerConfig, cache: dict[str, NamedResources] | None = None) -> str:
    """Run one claimed rollout to the end of its attempt; returns the status reported for the attempt."""
    cache = cache if cache is not None else {}
    rid, aid = rollout.rollout_id, rollout.attempt.attempt_id
    await store.update_attempt(rid, aid, status="running")
    beat = asyncio.create_task(_heartbeat(store, rollout, config.heartbeat_seconds))
    status, metadata = "succeeded", None
    deadline: asyncio.Timeout | None = None
    try:
        async with tracer.trace_attempt(store, rid, aid):
            try:
                resources = await _resources(store, rollout, cache)
                async with asyncio.timeout(rollout.config.timeout_seconds) as deadline:
                    reward = await agent.run(rollout, resources)
                if reward is not None:
                    emit_reward(reward)
            except TimeoutError as exc:
                if deadline is None or not deadline.expired():  # the agent's own TimeoutError: an ordinary failure
                    emit_exception(exc)
                    status, metadata = "failed", {"error": f"TimeoutError: {exc}", "traceback": traceback.format_exc()}
                else:
                    status, metadata = "timeout", {"error": f"agent ran over timeout_seconds="
                                                            f"{rollout.config.timeout_seconds}"}
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the agent's failure is the attempt's failure
                emit_exception(exc)
                status = "failed"
                metadata = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
                logger.warning("rollout %s attempt %s failed: %s", rid, aid, metadata["error"])
    except asyncio.CancelledError:  # runner shutting down: give the rollout back, untouched by this attempt
        with contextlib.suppress(Exception):
            await store.update_rollout(rid, status="requeuing", metadata={"requeued_by": "runner shutdown"})
        raise
    finally:
        beat.cancel()
    await _report(store, rollout, status, metadata)
    return status


async def worker_loop(store: LightningStore, agent: LitAgent, worker_id: str, stop: asyncio.Event | None = None,
                      config: RunnerConfig | None = None) -> int:
    """Claim and run rollouts until `stop` is set (or idle too long); returns how many rollouts it ran."""
    config = config or RunnerConfig()
    stop = stop or asyncio.Event()
    tracer, cache, count = Tracer(), {}, 0
    idle_since = time.monotonic()
    while not stop.is_set():
        rollout = await store.dequeue_rollout(worker_id)
        if rollout is None:
            if config.exit_when_idle_seconds is not None and time.monotonic() - idle_since > \
                    config.exit_when_idle_seconds:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), config.poll_seconds)
            continue
        task = asyncio.create_task(run_rollout(store, agent, rollout, tracer, config, cache))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            break
        task.result()
        count += 1
        idle_since = time.monotonic()
    return count


# ---------------------------------------------------------------------------------------------------------- pools
def _child_main(agent_bytes: bytes, store_url: str, token: str | None, worker_id: str, config: RunnerConfig,
                log_level: int) -> None:
    """Entry point of a worker process (spawned: nothing is inherited but these arguments)."""
    from agentlightning.store.http import LightningStoreClient

    logging.basicConfig(level=log_level, format=f"%(asctime)s {worker_id} %(levelname)s %(name)s: %(message)s")
    agent = cloudpickle.loads(agent_bytes)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        client = LightningStoreClient(store_url, token=token)
        try:
            await worker_loop(client, agent, worker_id, stop, config)
        finally:
            await client.close()

    asyncio.run(main())


def _pickle_agent(agent: LitAgent) -> bytes:
    """cloudpickle the agent; code from modules a fresh process cannot import (a script's `__main__`, a test file)
    travels by value, code from importable modules by reference."""
    fn = getattr(agent, "fn", None)
    for obj in (type(agent), fn):
        name = getattr(obj, "__module__", None)
        if not name or name == "builtins" or name.startswith("agentlightning."):
            continue
        module = sys.modules.get(name)
        importable = name != "__main__" and importlib.util.find_spec(name) is not None
        if module is not None and not importable:
            cloudpickle.register_pickle_by_value(module)
    return cloudpickle.dumps(agent)


class RunnerPool:
    """`n_runners` worker loops in processes (`backend="process"`) or Ray actors (`backend="ray"`).

    The store must be reachable over HTTP at `store_url` (`LightningStoreServer`); with Ray across nodes, serve it on
    an address the other nodes can reach (and set a token)."""

    def __init__(self, agent: LitAgent, store_url: str, n_runners: int = 2, backend: Literal["process", "ray"] = "process",
                 token: str | None = None, config: RunnerConfig | None = None, restart_dead: bool = True) -> None:
        if n_runners < 1:
            raise ValueError(f"n_runners={n_runners} must be >= 1")
        if backend not in ("process", "ray"):
            raise ValueError(f"runner backend {backend!r} is not one of 'process', 'ray'")
        if not isinstance(agent, LitAgent):
            raise TypeError(f"agent {agent!r} is not a LitAgent; subclass LitAgent or decorate a function with @rollout")
        self.agent, self.store_url, self.n_runners, self.backend = agent, store_url, n_runners, backend
        self.token, self.config, self.restart_dead = token, config or RunnerConfig(), restart_dead
        self._agent_bytes = _pickle_agent(agent)
        self._procs: dict[str, Any] = {}
        self._actors: list[Any] = []
        self._ray_runs: list[Any] = []
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        self.restarts = 0

    def _spawn(self, worker_id: str) -> None:
        ctx = mp.get_context("spawn")
        proc = ctx.Process(target=_child_main, name=f"agl-{worker_id}", daemon=True,
                           args=(self._agent_bytes, self.store_url, self.token, worker_id, self.config,
                                 logging.getLogger().getEffectiveLevel()))
        proc.start()
        self._procs[worker_id] = proc

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            for worker_id, proc in list(self._procs.items()):
                if proc.is_alive() or self._stopping.is_set():
                    continue
                logger.warning("runner %s died (exit code %s); its attempt will be requeued once it misses "
                               "heartbeats%s", worker_id, proc.exitcode, "; starting a replacement"
                               if self.restart_dead else "")
                del self._procs[worker_id]
                if self.restart_dead:
                    self.restarts += 1
                    self._spawn(f"{worker_id}-r{self.restarts}")

    def start(self) -> RunnerPool:
        if self.backend == "ray":
            self._start_ray()
            return self
        for i in range(self.n_runners):
            self._spawn(f"runner-{i}")
        self._monitor = threading.Thread(target=self._watch, name="agl-runner-monitor", daemon=True)
        self._monitor.start()
        logger.info("started %d runner processes against %s", self.n_runners, self.store_url)
        return self

    def _start_ray(self) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=True)
        actor_cls = ray.remote(num_cpus=0, max_concurrency=2)(_RayRunner)
        self._actors = [actor_cls.remote() for _ in range(self.n_runners)]
        self._ray_runs = [a.run.remote(self._agent_bytes, self.store_url, self.token, f"ray-runner-{i}", self.config)
                          for i, a in enumerate(self._actors)]
        logger.info("started %d Ray runner actors against %s", self.n_runners, self.store_url)

    def pids(self) -> dict[str, int | None]:
        return {worker_id: proc.pid for worker_id, proc in self._procs.items()}

    def stop(self, timeout: float = 30.0) -> None:
        """Ask every worker to stop (requeueing in-flight rollouts), then make sure none is left."""
        self._stopping.set()
        if self.backend == "ray":
            self._stop_ray(timeout)
            return
        for proc in self._procs.values():
            if proc.is_alive():
                proc.terminate()  # SIGTERM: the worker requeues its rollout and exits
        deadline = time.monotonic() + timeout
        for proc in self._procs.values():
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                logger.warning("runner %s did not exit in %.0f s; killing it", proc.name, timeout)
                proc.kill()
                proc.join(5)
        self._procs.clear()

    def _stop_ray(self, timeout: float) -> None:
        import ray

        with contextlib.suppress(Exception):
            ray.get([a.stop.remote() for a in self._actors], timeout=timeout)
            ray.get(self._ray_runs, timeout=timeout)
        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self._actors, self._ray_runs = [], []

    def __enter__(self) -> RunnerPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _RayRunner:
    """A Ray actor hosting one worker loop (wrapped with `ray.remote` at start, so Ray stays an optional import)."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def run(self, agent_bytes: bytes, store_url: str, token: str | None, worker_id: str, config: RunnerConfig
            ) -> int:
        from agentlightning.store.http import LightningStoreClient

        agent = cloudpickle.loads(agent_bytes)

        async def main() -> int:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            threading.Thread(target=lambda: (self._stop.wait(), loop.call_soon_threadsafe(stop.set)),
                             daemon=True).start()
            client = LightningStoreClient(store_url, token=token)
            try:
                return await worker_loop(client, agent, worker_id, stop, config)
            finally:
                await client.close()

        return asyncio.run(main())

    def stop(self) -> None:
        self._stop.set()
