"""Runners: workers that claim rollouts from the store, run the agent under the tracer, and report the attempt.

Where this sits: task → store → **runner** → agent → proxy → vLLM → spans. One worker loop:

    dequeue_rollout (a long poll: the store answers as soon as a rollout is queued, or after `poll_seconds`)
      → attempt `running` → resources (by the rollout's resources_id, else the latest)
      → agent.run(...) inside tracer.trace_attempt, heartbeating every `heartbeat_seconds`
      → reward returned? emit_reward → attempt `succeeded`
      → exception? emit_exception + attempt `failed` with the traceback in its metadata, and its cause
        (`metadata["cause"]`: "infra" for a transport/store/endpoint failure, "agent" for anything else; see
        `failure_cause`, used by training to keep infrastructure failures out of the learning signal)
      → over `timeout_seconds`? attempt `timeout` (the store requeues it per RolloutConfig)

Cancelling the loop (shutdown) cancels the agent and puts its claimed rollout back in the queue, so no rollout stays
claimed forever.

Failures stay where they happen: a store error inside one rollout (its `running` report, its spans, its final report)
ends that rollout only — logged, and the attempt left to the store's heartbeat deadline when it could not be
reported — never the loop and its other rollouts. A claim that fails because the store is unreachable (past the
client's retry deadline) is retried with back-off (1 s doubling to 30 s); the loop only ends on `stop`, when idle
(`exit_when_idle_seconds`), or on a claim error that retrying cannot fix (a wrong token, say). `agentlightning.runner_pool.RunnerPool` runs many loops in worker processes or Ray actors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any

from agentlightning.agent import LitAgent, agent_threads
from agentlightning.clients import warm_up
from agentlightning.emitter import emit_exception, emit_reward
from agentlightning.store.base import (
    InvalidTransitionError,
    LightningStore,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
)
from agentlightning.tracer import Tracer
from agentlightning.types import AttemptedRollout, NamedResources, Rollout

__all__ = ["INFRA_ERROR_NAMES", "RunnerConfig", "failure_cause", "rollout_failure_cause", "run_rollout", "worker_loop"]

logger = logging.getLogger(__name__)

# Exception classes (matched by name anywhere in the class's MRO, so optional libraries need not be imported) that
# mean the infrastructure failed, not the agent: the model endpoint or proxy unreachable or answering 5xx (openai,
# httpx, aiohttp), a tool server's stream closed under it (anyio, e.g. an MCP server that died), the store away.
INFRA_ERROR_NAMES: frozenset[str] = frozenset({
    "APIConnectionError", "APITimeoutError", "InternalServerError",  # openai (5xx answers included)
    "TransportError",  # httpx: connect/read/write errors and timeouts
    "ClientConnectionError", "ClientPayloadError",  # aiohttp: the same (the store client's transport)
    "ClosedResourceError", "BrokenResourceError", "EndOfStream",  # anyio: a tool server's stream went away
    "StoreError",  # agentlightning's store unreachable or refusing
})


def failure_cause(exc: BaseException) -> str:
    """"infra" when `exc` (or an exception it was raised from, up to 8 deep) is a transport-level failure: an
    `OSError` (connection refused/reset, broken pipe, `TimeoutError`) or a class named in `INFRA_ERROR_NAMES`;
    else "agent" (the agent's own bug, a malformed reply it could not handle, a tool error it raised)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, OSError) or any(c.__name__ in INFRA_ERROR_NAMES for c in type(seen).__mro__):
            return "infra"
        if isinstance(seen, BaseExceptionGroup):
            if any(failure_cause(e) == "infra" for e in seen.exceptions):
                return "infra"
        seen = seen.__cause__ or seen.__context__
    return "agent"


async def rollout_failure_cause(store: LightningStore, rollout: Rollout) -> str:
    """Why a rollout that did not succeed failed, from its latest attempt: "agent" only when the agent raised on its
    own (`run_rollout` recorded `cause: "agent"`); "infra" otherwise — its runner stopped heartbeating
    (`unresponsive`), it ran over its deadline (`timeout`), a transport/store failure, or it was given up or
    cancelled without an attempt that says more."""
    attempt = await store.get_latest_attempt(rollout.rollout_id)
    if attempt is None or attempt.status != "failed":
        return "infra"
    return "agent" if attempt.metadata.get("cause") == "agent" else "infra"


@dataclass(frozen=True)
class RunnerConfig:
    """poll_seconds: how long one dequeue waits in the store for a rollout to be queued (a long poll, so a new
    rollout is claimed at once; over HTTP a stopping worker waits up to this long for its pending dequeue to answer);
    heartbeat_seconds: liveness ping while an agent runs (keep it well below the rollouts' `unresponsive_seconds`;
    the trainer's default is 60); exit_when_idle_seconds: leave the loop after this long with nothing queued (None: run until stopped);
    max_concurrency: rollouts one worker runs at the same time (vLLM batches concurrent requests: on a 2-core CPU,
    8 concurrent requests gave 4.6x the tokens/s of one); shutdown_seconds: how long a stopping worker waits for its
    rollouts and claim to be given back (with the store away they cannot be; its heartbeat deadline requeues them).

    Why long polls and sparse heartbeats: on a CPU machine the runners share cores with vLLM, and every store request
    costs CPU in the runner and in the trainer's store server. Polling every 0.2 s and beating every 2 s per rollout
    were ~150 requests per calc_x rollout phase; measured there, other processes' CPU use slows vLLM's generation by
    about twice its own share of the cores (its OpenMP threads wait for a preempted one)."""

    poll_seconds: float = 2.0
    heartbeat_seconds: float = 10.0
    exit_when_idle_seconds: float | None = None
    max_concurrency: int = 1
    shutdown_seconds: float = 5.0

    def __post_init__(self) -> None:
        for name in ("poll_seconds", "heartbeat_seconds", "shutdown_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"RunnerConfig.{name}={getattr(self, name)} must be > 0")
        if self.max_concurrency < 1:
            raise ValueError(f"RunnerConfig.max_concurrency={self.max_concurrency} must be >= 1 (rollouts a worker "
                             "runs at once)")


_WARNED: set[tuple[float, float]] = set()  # (heartbeat_seconds, unresponsive_seconds) pairs warned about


async def _heartbeat(store: LightningStore, rollout: AttemptedRollout, every: float) -> None:
    limit = rollout.config.unresponsive_seconds
    if limit is not None and every >= limit and (every, limit) not in _WARNED:
        _WARNED.add((every, limit))
        logger.warning("rollout %s: heartbeat_seconds=%s is not below its unresponsive_seconds=%s, so a healthy "
                       "attempt longer than that is marked unresponsive. Fix: RunnerConfig(heartbeat_seconds=%s) "
                       "or a larger RolloutConfig.unresponsive_seconds", rollout.rollout_id, every, limit, limit / 4)
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
                  ) -> bool:
    """Record the attempt's status; False when the store refused it or could not be reached (logged)."""
    try:
        await store.update_attempt(rollout.rollout_id, rollout.attempt.attempt_id, status=status, metadata=metadata)
        return True
    except (InvalidTransitionError, NotFoundError) as exc:  # e.g. cancelled meanwhile: the store has the last word
        logger.info("rollout %s: could not record %s (%s)", rollout.rollout_id, status, exc)
    except StoreError as exc:  # unreachable past the client's deadline: the store's heartbeat deadline takes over
        logger.error("rollout %s attempt %s: could not record %s: %s. The store will treat the attempt as "
                     "unresponsive per the rollout's config", rollout.rollout_id, rollout.attempt.attempt_id, status,
                     exc)
    return False


async def _give_back(store: LightningStore, rollout_id: str, attempt_id: str) -> None:
    """Requeue the rollout if this attempt is still its live one (it may have timed out and been claimed by another
    worker meanwhile: requeuing then would fail that worker's attempt)."""
    latest = await store.get_latest_attempt(rollout_id)
    if latest is not None and latest.attempt_id == attempt_id and latest.is_active:
        await store.update_rollout(rollout_id, status="requeuing", metadata={"requeued_by": "runner shutdown"})


async def run_rollout(store: LightningStore, agent: LitAgent, rollout: AttemptedRollout, tracer: Tracer,
                      config: RunnerConfig, cache: dict[str, NamedResources] | None = None) -> str:
    """Run one claimed rollout to the end of its attempt; returns the status reported for the attempt."""
    cache = cache if cache is not None else {}
    rid, aid = rollout.rollout_id, rollout.attempt.attempt_id
    try:
        await store.update_attempt(rid, aid, status="running")
    except (InvalidTransitionError, NotFoundError) as exc:  # cancelled or requeued between the claim and now
        logger.info("rollout %s attempt %s was withdrawn before it started (%s); dropped", rid, aid, exc)
        return "dropped"
    except StoreError as exc:  # unreachable: run anyway, the later reports may get through
        logger.warning("rollout %s attempt %s: could not report running (%s); running it anyway", rid, aid, exc)
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
                    status, metadata = "failed", {"error": f"TimeoutError: {exc}", "cause": "infra",
                                                  "traceback": traceback.format_exc()}
                else:
                    status, metadata = "timeout", {"error": f"agent ran over timeout_seconds="
                                                            f"{rollout.config.timeout_seconds}", "cause": "infra"}
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the agent's failure is the attempt's failure
                emit_exception(exc)
                status = "failed"
                metadata = {"error": f"{type(exc).__name__}: {exc}", "cause": failure_cause(exc),
                            "traceback": traceback.format_exc()}
                logger.warning("rollout %s attempt %s failed (%s): %s", rid, aid, metadata["cause"], metadata["error"])
    except asyncio.CancelledError:  # runner shutting down: give the rollout back, untouched by this attempt
        with contextlib.suppress(Exception):
            await _give_back(store, rid, aid)
        raise
    except StoreError as exc:  # the tracer could not write the attempt's spans: its trace is incomplete
        status, metadata = "failed", {"error": f"the attempt's spans could not be stored: {exc}", "cause": "infra"}
        logger.error("rollout %s attempt %s: %s", rid, aid, metadata["error"])
    finally:
        beat.cancel()
    await _report(store, rollout, status, metadata)
    return status


async def worker_loop(store: LightningStore, agent: LitAgent, worker_id: str, stop: asyncio.Event | None = None,
                      config: RunnerConfig | None = None, tracer: Tracer | None = None) -> int:
    """Claim and run rollouts until `stop` is set (or idle too long); returns how many rollouts it ran.

    Up to `config.max_concurrency` rollouts run at once on this event loop (async agents overlap their model calls;
    sync agents run on `max_concurrency` threads of their own). On stop, in-flight rollouts are cancelled and go back
    to the queue; a sync agent's thread cannot be cancelled, and this loop returns without waiting for it."""
    config = config or RunnerConfig()
    stop = stop or asyncio.Event()
    tracer, cache, count = tracer or Tracer(), {}, 0
    await asyncio.to_thread(warm_up)  # openai's first-use imports (0.5 s), off the loop the episodes will share
    running: set[asyncio.Task[str]] = set()
    idle_since = time.monotonic()
    stopper = asyncio.create_task(stop.wait())
    # one dequeue in flight at a time, while there is room; it waits in the store (long poll) unless this loop is to
    # exit when idle sooner than that
    wait = config.poll_seconds if config.exit_when_idle_seconds is None else \
        min(config.poll_seconds, config.exit_when_idle_seconds)
    claim: asyncio.Task[AttemptedRollout | None] | None = None
    retry_at = 0.0  # after an empty answer to a short (not waiting) dequeue: poll_seconds later, or when one ends
    backoff = 0.0  # after a claim that failed because the store is unreachable
    with agent_threads(config.max_concurrency):  # sync agents: one thread per concurrent rollout
        try:
            while not stop.is_set():
                timeout = None
                if claim is None and len(running) < config.max_concurrency:
                    if time.monotonic() >= retry_at:
                        claim = asyncio.create_task(store.dequeue_rollout(worker_id, wait_seconds=wait))
                    else:
                        timeout = retry_at - time.monotonic()
                waiting: set[asyncio.Future[Any]] = {*running, stopper, *([claim] if claim is not None else [])}
                done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if claim is not None and claim in done:
                    try:
                        rollout, claim = claim.result(), None
                    except StoreUnavailableError as exc:  # the store is away: wait and ask again, never exit for it
                        claim, backoff = None, min(30.0, max(1.0, 2 * backoff))
                        retry_at = time.monotonic() + backoff
                        logger.warning("worker %s: cannot claim a rollout (%s); asking again in %.0f s", worker_id,
                                       exc, backoff)
                        continue
                    backoff = 0.0
                    if rollout is not None:
                        running.add(asyncio.create_task(run_rollout(store, agent, rollout, tracer, config, cache)))
                        idle_since = time.monotonic()
                    elif not running and config.exit_when_idle_seconds is not None and \
                            time.monotonic() - idle_since >= config.exit_when_idle_seconds:
                        break
                    elif wait < config.poll_seconds:
                        retry_at = time.monotonic() + config.poll_seconds
                for task in done & running:
                    running.discard(task)
                    # a bug or store error outside the agent: this rollout only
                    if (error := task.exception()) is not None:
                        logger.error("worker %s: a rollout ended with %s: %s; the worker goes on", worker_id,
                                     type(error).__name__, error, exc_info=error)
                    count += 1
                    idle_since, retry_at = time.monotonic(), 0.0
        finally:
            stopper.cancel()
            await _shut_down(store, running, claim, config.shutdown_seconds)
    return count


async def _shut_down(store: LightningStore, running: set[asyncio.Task[str]],
                     claim: asyncio.Task[AttemptedRollout | None] | None, grace: float) -> None:
    """Cancel the running rollouts (each gives its rollout back) and the pending claim (a cancelled dequeue claims
    nothing; one that already answered may have: that one is given back), within `grace` seconds: with the store
    away the give-backs cannot land, and the store's heartbeat deadline requeues those rollouts instead."""
    pending: set[asyncio.Future[Any]] = set(running)
    for task in running:
        task.cancel()
    if claim is not None:
        claim.cancel()
        pending.add(asyncio.ensure_future(_give_back_claim(store, claim)))
    if not pending:
        return
    _, late = await asyncio.wait(pending, timeout=grace)
    for task in late:  # a second cancel ends a give-back still waiting for an unreachable store
        task.cancel()
    if late:
        logger.warning("runner stopping: %d rollout(s) could not be given back within %.0f s; the store requeues "
                       "them when their heartbeats stop", len(late), grace)
        await asyncio.wait(late, timeout=1.0)


async def _give_back_claim(store: LightningStore, claim: asyncio.Task[AttemptedRollout | None]) -> None:
    with contextlib.suppress(asyncio.CancelledError, Exception):
        if (late := await claim) is not None:
            await store.update_rollout(late.rollout_id, status="requeuing", metadata={"requeued_by": "runner shutdown"})

