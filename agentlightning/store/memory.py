"""`InMemoryLightningStore`: the default store, dicts behind one asyncio lock (contract: `store/base.py`).

Where this sits: in the trainer process. Runners in other processes reach it through `LightningStoreServer`.
Nothing survives the process; use `SqliteLightningStore` when it must. Work grows with what is active, not
with history: rollouts are indexed by status (so the timeout sweep visits only `preparing`/`running` ones, and a
status query only the rollouts in those statuses), and the queue is a deque. Idempotency keys
(`store/idempotency.py`) are
looked up and recorded under the same lock as the change they guard, and so are the input rules
(`store/validation.py`): a span batch is checked and numbered whole before any of it is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any, Literal

from agentlightning.store.base import LightningStore, NotFoundError, RolloutRequest
from agentlightning.store.idempotency import MISS, KeyCache
from agentlightning.store.transitions import (
    apply_attempt_status,
    apply_rollout_status,
    build_rollout,
    expired_status,
    find_attempt,
    new_attempt,
    patch_attempt,
    patch_rollout,
    select_attempt_ids,
)
from agentlightning.store.validation import (
    check_next_sequence_id,
    check_resources_id,
    check_span_batch,
    check_wait_seconds,
)
from agentlightning.types import (
    TERMINAL_ROLLOUT_STATUSES,
    Attempt,
    AttemptedRollout,
    AttemptStatus,
    NamedResources,
    ResourcesUpdate,
    Rollout,
    RolloutStatus,
    Span,
)

__all__ = ["InMemoryLightningStore"]


class InMemoryLightningStore(LightningStore):
    """All state in dicts; every method takes one lock, so each is atomic."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition(self._lock)  # any change (wait_for_rollouts)
        self._queued = asyncio.Condition(self._lock)  # a rollout entered the queue (long-polling dequeues)
        self._rollouts: OrderedDict[str, Rollout] = OrderedDict()
        self._attempts: dict[str, list[Attempt]] = {}
        self._queue: deque[str] = deque()
        self._order: dict[str, int] = {}  # rollout id → enqueue position (query answers are in enqueue order)
        self._by_status: dict[str, dict[str, None]] = {}  # status → its rollout ids (an ordered set)
        self._spans: dict[tuple[str, str], list[Span]] = {}
        self._span_ids: dict[tuple[str, str, str], Span] = {}  # (rollout_id, attempt_id, span_id) → the stored span
        self._span_counters: dict[tuple[str, str], int] = {}
        self._counter_lock = threading.Lock()  # counters are also bumped from tracer threads (reserve_...)
        self._resources: dict[str, ResourcesUpdate] = {}
        self._latest_resources_id: str | None = None
        self._keys = KeyCache()

    # ------------------------------------------------------------------ helpers (call with the lock held)
    def _rollout(self, rollout_id: str) -> Rollout:
        try:
            return self._rollouts[rollout_id]
        except KeyError:
            raise NotFoundError(f"rollout {rollout_id!r} does not exist in this store") from None

    def _attempt(self, rollout_id: str, attempt_id: str) -> tuple[Attempt, bool]:
        return find_attempt(self._attempts.get(rollout_id, []), rollout_id, attempt_id)

    def _index(self, rollout: Rollout, previous: str | None) -> None:
        if previous == rollout.status:
            return
        if previous is not None:
            self._by_status[previous].pop(rollout.rollout_id, None)
        self._by_status.setdefault(rollout.status, {})[rollout.rollout_id] = None

    def _save(self, rollout: Rollout, attempt: Attempt | None = None) -> None:
        previous = self._rollouts[rollout.rollout_id].status
        self._rollouts[rollout.rollout_id] = rollout
        self._index(rollout, previous)
        if rollout.status in ("queuing", "requeuing") and previous not in ("queuing", "requeuing"):
            self._queue.append(rollout.rollout_id)
            self._queued.notify(1)  # one waiting dequeue per queued rollout, not all of them (256 long polls)
        if attempt is not None:
            attempts = self._attempts[rollout.rollout_id]
            for i, old in enumerate(attempts):
                if old.attempt_id == attempt.attempt_id:
                    attempts[i] = attempt
        self._changed.notify_all()

    def _sweep(self) -> None:
        now = time.time()
        active = [*self._by_status.get("preparing", ()), *self._by_status.get("running", ())]
        for rollout_id in active:
            rollout = self._rollouts[rollout_id]
            attempt = self._attempts[rollout_id][-1]
            status = expired_status(rollout, attempt, now)
            if status is not None:
                self._save(*apply_attempt_status(rollout, attempt, status, True, now))

    # ------------------------------------------------------------------ rollouts
    async def enqueue_many_rollouts(self, requests: Sequence[RolloutRequest], idempotency_key: str | None = None
                                    ) -> list[Rollout]:
        rollouts = [build_rollout(**request) for request in requests]
        async with self._lock:
            if (first := self._keys.get(idempotency_key, "enqueue_many_rollouts")) is not MISS:
                return first
            self._keys.put(idempotency_key, "enqueue_many_rollouts", rollouts)
            for rollout in rollouts:
                self._rollouts[rollout.rollout_id] = rollout
                self._order[rollout.rollout_id] = len(self._order)
                self._index(rollout, None)
                self._attempts[rollout.rollout_id] = []
                self._queue.append(rollout.rollout_id)
            self._changed.notify_all()
            self._queued.notify(len(rollouts))
        return rollouts

    async def dequeue_rollout(self, worker_id: str | None = None, wait_seconds: float = 0.0,
                              idempotency_key: str | None = None) -> AttemptedRollout | None:
        deadline = time.monotonic() + max(0.0, wait_seconds)
        async with self._lock:
            while True:
                # (checked on every wake-up: a repeat may wait while the first call, whose client left, claims)
                if (first := self._keys.get(idempotency_key, "dequeue_rollout")) is not MISS:
                    if self._queue:  # it may have been woken for a queued rollout it does not take: pass that on
                        self._queued.notify(1)
                    return first
                self._sweep()
                while self._queue:
                    rollout = self._rollouts[self._queue.popleft()]
                    if rollout.status not in ("queuing", "requeuing"):
                        continue  # cancelled or otherwise moved on while queued
                    rollout, attempt = new_attempt(rollout, worker_id, time.time())
                    self._attempts[rollout.rollout_id].append(attempt)
                    self._save(rollout)
                    claimed = AttemptedRollout(**rollout.model_dump(), attempt=attempt)
                    self._keys.put(idempotency_key, "dequeue_rollout", claimed)
                    return claimed
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                # woken when a rollout is queued, one waiter per rollout (not by every span or heartbeat, nor all
                # waiters at once: a cluster's runners keep hundreds of long polls waiting); at least every
                # second, so attempts that expired meanwhile get swept and requeued
                # (asyncio.timeout, not wait_for: the wait runs in this task, so a cancelled dequeue still
                # re-acquires the lock before `async with` releases it — wait_for's inner task may not have yet)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(1.0, remaining)):
                        await self._queued.wait()

    async def update_attempt(
        self,
        rollout_id: str,
        attempt_id: str | Literal["latest"],
        status: AttemptStatus | None = None,
        heartbeat: bool = False,
        worker_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Attempt:
        async with self._lock:
            if (first := self._keys.get(idempotency_key, "update_attempt")) is not MISS:
                return first
            rollout = self._rollout(rollout_id)
            attempt, is_latest = self._attempt(rollout_id, attempt_id)
            now = time.time()
            attempt = patch_attempt(attempt, heartbeat, worker_id, metadata, now)
            if status is not None:
                rollout, attempt = apply_attempt_status(rollout, attempt, status, is_latest, now)
            self._save(rollout, attempt)
            self._keys.put(idempotency_key, "update_attempt", attempt)
            return attempt

    async def update_rollout(
        self,
        rollout_id: str,
        status: RolloutStatus | None = None,
        metadata: dict[str, Any] | None = None,
        resources_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Rollout:
        async with self._lock:
            if (first := self._keys.get(idempotency_key, "update_rollout")) is not MISS:
                return first
            rollout = self._rollout(rollout_id)
            attempts = self._attempts[rollout_id]
            attempt = attempts[-1] if attempts else None
            if status is not None:
                rollout, attempt = apply_rollout_status(rollout, attempt, status, time.time())
            rollout = patch_rollout(rollout, metadata, resources_id)
            self._save(rollout, attempt)
            self._keys.put(idempotency_key, "update_rollout", rollout)
            return rollout

    async def wait_for_rollouts(self, rollout_ids: Sequence[str], timeout: float | None = None) -> list[Rollout]:
        check_wait_seconds("timeout", timeout, "wait_for_rollouts")
        deadline = None if timeout is None else time.monotonic() + timeout
        async with self._lock:
            for rollout_id in rollout_ids:
                self._rollout(rollout_id)
            while True:
                self._sweep()
                done = [self._rollouts[r] for r in rollout_ids if self._rollouts[r].status in TERMINAL_ROLLOUT_STATUSES]
                if len(done) == len(rollout_ids):
                    return done
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return done
                # Wake on any change, and at least every second so timeouts/heartbeats get swept.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(1.0, remaining or 1.0)):  # see dequeue_rollout
                        await self._changed.wait()

    async def query_rollouts(
        self, status: Sequence[RolloutStatus] | None = None, rollout_ids: Sequence[str] | None = None
    ) -> list[Rollout]:
        async with self._lock:
            self._sweep()
            if rollout_ids is not None:
                candidates = [self._rollouts[r] for r in rollout_ids if r in self._rollouts]
                return [r for r in candidates if status is None or r.status in status]
            if status is None:
                return list(self._rollouts.values())
            ids = [r for s in set(status) for r in self._by_status.get(s, ())]
            return [self._rollouts[r] for r in sorted(ids, key=self._order.__getitem__)]

    async def get_rollout_by_id(self, rollout_id: str) -> Rollout:
        async with self._lock:
            self._sweep()
            return self._rollout(rollout_id)

    async def query_attempts(self, rollout_id: str) -> list[Attempt]:
        async with self._lock:
            self._rollout(rollout_id)
            self._sweep()
            return list(self._attempts[rollout_id])

    # ------------------------------------------------------------------ spans
    async def get_next_span_sequence_id(self, rollout_id: str, attempt_id: str) -> int:
        async with self._lock:
            return self._next_sequence_id(rollout_id, attempt_id)

    def _next_sequence_id(self, rollout_id: str, attempt_id: str) -> int:
        self._rollout(rollout_id)
        attempt, _ = self._attempt(rollout_id, attempt_id)
        key = (rollout_id, attempt.attempt_id)
        with self._counter_lock:
            current = self._span_counters.get(key, 0)
            check_next_sequence_id(rollout_id, attempt.attempt_id, current)
            self._span_counters[key] = current + 1
            return current + 1

    def _check_span_attempt(self, rollout_id: str, attempt_id: str) -> None:
        self._rollout(rollout_id)
        self._attempt(rollout_id, attempt_id)

    async def add_spans(self, spans: Sequence[Span], idempotency_key: str | None = None) -> list[Span]:
        async with self._lock:
            if (first := self._keys.get(idempotency_key, "add_spans")) is not MISS:
                return first
            plan = check_span_batch(spans, self._check_span_attempt, lambda r, a, s: self._span_ids.get((r, a, s)))
            stored: list[Span] = []
            with self._counter_lock:  # number the whole batch first: a batch that cannot be numbered stores nothing
                counters: dict[tuple[str, str], int] = {}
                for span, repeat in zip(spans, plan, strict=True):
                    if repeat is not None:  # a re-sent span: answered with the stored one (or the batch's earlier)
                        stored.append(stored[repeat] if isinstance(repeat, int) else repeat)
                        continue
                    key = (span.rollout_id, span.attempt_id)
                    current = counters.get(key, self._span_counters.get(key, 0))
                    if span.sequence_id is None:
                        check_next_sequence_id(*key, current)
                        span = span.model_copy(update={"sequence_id": current + 1})
                    counters[key] = max(current, span.sequence_id or 0)
                    stored.append(span)
                self._span_counters.update(counters)
            for span, repeat in zip(stored, plan, strict=True):
                if repeat is None:
                    self._spans.setdefault((span.rollout_id, span.attempt_id), []).append(span)
                    self._span_ids[(span.rollout_id, span.attempt_id, span.span_id)] = span
            self._keys.put(idempotency_key, "add_spans", stored)
            return stored

    async def query_spans(self, rollout_id: str, attempt_id: str | Literal["latest"] | None = "latest") -> list[Span]:
        async with self._lock:
            self._rollout(rollout_id)
            chosen = select_attempt_ids(self._attempts[rollout_id], rollout_id, attempt_id)
            spans: list[Span] = []
            for aid in chosen:
                spans.extend(sorted(self._spans.get((rollout_id, aid), []), key=lambda s: s.sequence_id or 0))
            return spans

    # ------------------------------------------------------------------ resources
    async def update_resources(self, resources_id: str, resources: NamedResources,
                               idempotency_key: str | None = None) -> ResourcesUpdate:
        check_resources_id(resources_id)
        async with self._lock:
            if (first := self._keys.get(idempotency_key, "update_resources")) is not MISS:
                return first
            previous = self._resources.get(resources_id)
            update = ResourcesUpdate.model_validate(
                {"resources_id": resources_id, "version": previous.version + 1 if previous else 1,
                 "resources": {k: v if isinstance(v, dict) else v.model_dump() for k, v in resources.items()}}
            )
            self._resources[resources_id] = update
            self._latest_resources_id = resources_id
            self._keys.put(idempotency_key, "update_resources", update)
            return update

    async def get_latest_resources(self) -> ResourcesUpdate | None:
        async with self._lock:
            return self._resources.get(self._latest_resources_id) if self._latest_resources_id else None

    async def get_resources_by_id(self, resources_id: str) -> ResourcesUpdate:
        async with self._lock:
            try:
                return self._resources[resources_id]
            except KeyError:
                raise NotFoundError(f"resources {resources_id!r} do not exist in this store") from None
