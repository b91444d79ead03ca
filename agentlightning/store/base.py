"""The LightningStore contract: the one place where tasks, attempts, spans and resources meet.

Where this sits: task → **store** → runner → agent → proxy → vLLM → spans → **store** → adapter → verl batch.
The trainer enqueues rollouts and publishes resources; runners dequeue rollouts and report attempts; the proxy and
tracer add spans; the adapter reads spans back. Every backend (in-memory, SQLite, HTTP client) implements this class
and passes the same contract tests (`tests/store/test_contract.py`).

Status machine (rollout):

    queuing ──dequeue──▶ preparing ──attempt running──▶ running ──attempt succeeded──▶ succeeded
       ▲                     │                              │
       │                     └──────────attempt failed / timeout / unresponsive───────┐
       │                                                                               ▼
       └──────────── requeuing ◀── outcome in config.retry_condition and attempts < max_attempts, else ──▶ failed
    cancel(): any non-terminal status ──▶ cancelled (its active attempt becomes `cancelled`).

Attempt statuses: preparing → running → succeeded | failed | timeout | unresponsive | cancelled.
The complete table — every rollout and attempt transition, and what may cause it (a claim, an attempt's report, or
`update_rollout`) — is in `agentlightning/store/transitions.py` (`ROLLOUT_TRANSITIONS`, `ATTEMPT_TRANSITIONS`); every
backend enforces it, and `tests/store/test_transitions.py` tries every from/to pair on each. In short,
`update_rollout` never sets `preparing` or `running` (only a claim and the attempt's own report do), never makes a
rollout that nothing runs succeed, and never changes a terminal rollout; setting the current status is a no-op.
`timeout` is set when an attempt runs longer than `config.timeout_seconds`; `unresponsive` when it has not
heartbeaten for `config.unresponsive_seconds` (start time counts as the first heartbeat, and a durable store reopened
after a crash counts its opening as one: no runner could beat while it was down). The store checks these on
every dequeue, query and wait (and the HTTP server also checks periodically), so nothing needs a clock of its own.

Rules that make retries safe:
- Only the *latest* attempt of a *non-terminal* rollout moves the rollout. A result from a superseded attempt (one
  that timed out and was retried, say) is recorded on that attempt and changes nothing else: no crash, no double count.
- A terminal rollout (succeeded, failed, cancelled) never changes status again; a late success cannot turn `failed`
  into `succeeded`. Setting a terminal rollout's status raises `InvalidTransitionError`.
- `dequeue_rollout` is atomic: the claim of a rollout and the creation of its attempt happen in one step (one lock
  in memory, one `BEGIN IMMEDIATE` transaction in SQLite), so two workers never get the same attempt. Cancelling a
  waiting `dequeue_rollout(wait_seconds=...)` claims nothing: in-process stores stop waiting at once; the HTTP client
  lets the request answer and gives back what it claimed (`requeuing`), and the server gives a claim back when it
  finds that the client has gone (a killed process).
- Span `sequence_id`s are a per-attempt counter kept by the store (`get_next_span_sequence_id`); `add_span` assigns
  the next one when a span arrives without it.

What the store accepts (`store/validation.py`; the same on every backend):
- A resources id (`update_resources`) is 1 to 128 characters from `A-Za-z0-9._-`; `latest`, `.` and `..` are
  reserved (`GET /resources/latest` reads the newest; the others are URL path steps). Anything else raises
  `StoreRequestError` naming the id, the rule and a fix; `get_resources_by_id` of a reserved name is `NotFoundError`.
- A span batch (`add_spans`) is checked whole before any span of it is stored: all or nothing. Each span names an
  existing rollout and one of its attempts *by id* — `attempt_id="latest"` is refused (`StoreRequestError`), an
  unknown one is `NotFoundError` — and an explicit `sequence_id` lies in 0..2**63-1 (`types.MAX_SEQUENCE_ID`).
- `span_id` is unique within an attempt. A span re-sent under a stored `span_id` is idempotent when it is the same
  span (every field equal; `sequence_id` too unless the re-sent one has none): the stored span is answered and
  nothing is stored twice. A *different* span under a taken `span_id` raises `StoreRequestError` naming it.
- Numbers are bounded where they enter: span `sequence_id` as above, span times and `RolloutConfig` seconds finite,
  `wait_for_rollouts(timeout=...)` None or finite and >= 0. Over HTTP a bad number is a 400 naming the field.

Idempotency (what makes network retries safe): every mutating method takes `idempotency_key=`. A call whose key the
store has already seen is not applied again; it returns the answer of the first call with that key (the same
rollout ids, the same claim, the same span sequence ids), looked up in the same atomic step as the change. The HTTP
client makes one key per logical call and resends it with each retry, so a write whose answer was lost is applied
exactly once. Keys are kept one hour (at most 200,000 in memory; the SQLite store keeps them in its file, across
restarts); a key reused for another method raises `StoreRequestError`. A `dequeue_rollout` that claimed nothing
records nothing (repeating it just polls again). `cancel` and `update_rollout(status=...)` to the same status are
idempotent even without a key. Sequence-id reservations take no key: a repeated one only leaves a gap in the order.

What raises (all subclasses of `StoreError`):
- `NotFoundError`: an unknown rollout, attempt or resources id (the message names it).
- `InvalidTransitionError`: an illegal status change (the message names the id, its state and the requested state).
- `StoreRequestError`: a malformed request (a bad value, an id outside the rules above, a span that conflicts with a
  stored one, an idempotency key reused for another method).
- `StoreUnavailableError` (HTTP client only): the store did not answer within the client's retry deadline; the
  message names the store URL, the call and the last transport error.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from agentlightning.types import (
    Attempt,
    AttemptedRollout,
    AttemptStatus,
    NamedResources,
    ResourcesUpdate,
    Rollout,
    RolloutConfig,
    RolloutMode,
    RolloutStatus,
    Span,
)

__all__ = ["InvalidTransitionError", "LightningStore", "NotFoundError", "RolloutRequest", "StoreError",
           "StoreRequestError", "StoreUnavailableError"]


class StoreError(Exception):
    """Base class of the errors the store contract raises."""


class NotFoundError(StoreError, LookupError):
    """An id the store does not know."""


class InvalidTransitionError(StoreError):
    """A status change the status machine forbids."""


class StoreRequestError(StoreError, ValueError):
    """The store rejected a request as malformed (HTTP 400)."""


class StoreUnavailableError(StoreError, ConnectionError):
    """The store could not be reached, or did not answer, within the client's retry deadline."""


RolloutRequest = dict[str, Any]
"""Keyword arguments of `enqueue_rollout` (`input` required), as used by `enqueue_many_rollouts`."""


class LightningStore(abc.ABC):
    """Async contract of every store backend (see the module docstring for the status machine)."""

    # ------------------------------------------------------------------ rollouts
    async def enqueue_rollout(
        self,
        input: Any,
        mode: RolloutMode | None = None,
        resources_id: str | None = None,
        config: RolloutConfig | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Rollout:
        """Add a rollout in status `queuing`; returns it with its new `rollout_id`."""
        request = dict(input=input, mode=mode, resources_id=resources_id, config=config, metadata=metadata)
        return (await self.enqueue_many_rollouts([request], idempotency_key=idempotency_key))[0]

    @abc.abstractmethod
    async def enqueue_many_rollouts(self, requests: Sequence[RolloutRequest], idempotency_key: str | None = None
                                    ) -> list[Rollout]:
        """Enqueue several rollouts in one step (atomic: all or none), in order."""

    @abc.abstractmethod
    async def dequeue_rollout(self, worker_id: str | None = None, wait_seconds: float = 0.0,
                              idempotency_key: str | None = None) -> AttemptedRollout | None:
        """Atomically claim the oldest `queuing`/`requeuing` rollout and create its next attempt (`preparing`).
        Returns None when nothing is queued; with `wait_seconds` > 0, waits up to that long for a rollout to be
        queued first (a long poll: idle runners cost nothing, and claim new work as soon as it is enqueued)."""

    @abc.abstractmethod
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
        """Record an attempt's progress: a new status, a heartbeat, or metadata (merged). Drives the rollout when the
        attempt is the latest of a non-terminal rollout. Raises NotFoundError / InvalidTransitionError."""

    @abc.abstractmethod
    async def update_rollout(
        self,
        rollout_id: str,
        status: RolloutStatus | None = None,
        metadata: dict[str, Any] | None = None,
        resources_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Rollout:
        """Change a rollout directly (metadata is merged), as the table in `store/transitions.py` allows: terminal
        rollouts cannot change status, `preparing`/`running` are never set here; setting `queuing`/`requeuing` puts it
        back in the queue (its active attempt, if any, is marked failed). InvalidTransitionError otherwise."""

    async def cancel(self, rollout_id: str, idempotency_key: str | None = None) -> Rollout:
        """Cancel a non-terminal rollout (idempotent on an already cancelled one)."""
        return await self.update_rollout(rollout_id, status="cancelled", idempotency_key=idempotency_key)

    @abc.abstractmethod
    async def wait_for_rollouts(self, rollout_ids: Sequence[str], timeout: float | None = None) -> list[Rollout]:
        """Wait until every listed rollout is terminal or `timeout` seconds pass; returns the terminal ones, in the
        order asked. Unknown ids raise NotFoundError."""

    @abc.abstractmethod
    async def query_rollouts(
        self, status: Sequence[RolloutStatus] | None = None, rollout_ids: Sequence[str] | None = None
    ) -> list[Rollout]:
        """Rollouts filtered by status and/or ids, in enqueue order."""

    @abc.abstractmethod
    async def get_rollout_by_id(self, rollout_id: str) -> Rollout:
        """One rollout; NotFoundError if unknown."""

    @abc.abstractmethod
    async def query_attempts(self, rollout_id: str) -> list[Attempt]:
        """All attempts of a rollout, by `sequence_id`."""

    async def get_latest_attempt(self, rollout_id: str) -> Attempt | None:
        """The newest attempt of a rollout, or None if it was never dequeued."""
        attempts = await self.query_attempts(rollout_id)
        return attempts[-1] if attempts else None

    # ------------------------------------------------------------------ spans
    @abc.abstractmethod
    async def get_next_span_sequence_id(self, rollout_id: str, attempt_id: str) -> int:
        """Reserve and return the next span sequence id of the attempt (1, 2, 3, ...)."""

    async def add_span(self, span: Span, idempotency_key: str | None = None) -> Span:
        """Store a span (assigning `sequence_id` if missing). Its rollout and attempt must exist."""
        return (await self.add_spans([span], idempotency_key=idempotency_key))[0]

    @abc.abstractmethod
    async def add_spans(self, spans: Sequence[Span], idempotency_key: str | None = None) -> list[Span]:
        """Store several spans, in order, in one step: all of them or, if any is refused, none (see the module
        docstring for the rules). Returns them as stored; a re-sent span comes back as the stored one."""

    @abc.abstractmethod
    async def query_spans(self, rollout_id: str, attempt_id: str | Literal["latest"] | None = "latest") -> list[Span]:
        """Spans of one attempt (`"latest"`: the newest attempt; None: all attempts), by attempt then sequence id."""

    # ------------------------------------------------------------------ resources
    async def add_resources(self, resources: NamedResources, idempotency_key: str | None = None) -> ResourcesUpdate:
        """Publish a new resources version with a fresh `resources_id`; it becomes the latest."""
        return await self.update_resources(f"rs-{uuid.uuid4().hex[:12]}", resources, idempotency_key=idempotency_key)

    @abc.abstractmethod
    async def update_resources(self, resources_id: str, resources: NamedResources,
                               idempotency_key: str | None = None) -> ResourcesUpdate:
        """Create or replace the resources under a chosen id (its version increments); it becomes the latest. The id
        follows the resources-id rule (module docstring); `StoreRequestError` otherwise."""

    @abc.abstractmethod
    async def get_latest_resources(self) -> ResourcesUpdate | None:
        """The most recently added/updated resources, or None."""

    @abc.abstractmethod
    async def get_resources_by_id(self, resources_id: str) -> ResourcesUpdate:
        """One resources version; NotFoundError if unknown."""

    # ------------------------------------------------------------------ lifecycle
    async def close(self) -> None:
        """Release connections/files. Safe to call twice."""
        return None
