"""The status machine of `agentlightning.store.base`: one table of transitions, and pure functions that apply it.

Where this sits: inside every store backend. Backends load the current objects (from a dict or a SQLite row), call
one of these functions under their lock/transaction, and write back what it returns. Keeping the rules here means
the in-memory and SQLite stores (and the HTTP server in front of either) cannot drift apart;
`tests/store/test_transitions.py` tries every from/to pair on every backend.

Rollout transitions (`ROLLOUT_TRANSITIONS`). Causes: *dequeue* = `dequeue_rollout` claims it (and makes a new attempt);
*attempt* = its latest attempt reports a status (`update_attempt`, or the store marking it `timeout`/`unresponsive`);
*update* = `update_rollout(status=...)` / `cancel()`. Setting the status a rollout already has is a no-op; every pair
not listed raises `InvalidTransitionError` naming the rollout, its status, the status asked for and what is allowed.

    from        to          by                why
    queuing → preparing     dequeue           a runner claims it
    queuing → requeuing     update            (stays queued, in its place)
    queuing → failed        update            given up before it ran
    queuing → cancelled     update
    requeuing → preparing   dequeue           the next attempt is claimed
    requeuing → queuing     update            (stays queued, in its place)
    requeuing → failed      update            no more retries wanted
    requeuing → cancelled   update
    preparing → running     attempt           the runner reports `running`
    preparing → succeeded   attempt, update   (update closes the attempt as succeeded)
    preparing → failed      attempt, update   attempt failed with no retry left / closed as failed
    preparing → cancelled   attempt, update   (its attempt becomes cancelled)
    preparing → requeuing   attempt, update   a retryable failure with attempts left / given back (attempt failed)
    preparing → queuing     update            given back (its attempt failed)
    running → succeeded     attempt, update
    running → failed        attempt, update
    running → cancelled     attempt, update
    running → requeuing     attempt, update
    running → queuing       update
    succeeded, failed, cancelled: final, nothing leaves them.

`preparing` and `running` are never set by `update_rollout`: only a claim makes an attempt, and only the attempt
reports that it runs (requeuing → running would leave a rollout that no runner claims or finishes). A rollout that
nothing runs (queuing, requeuing) cannot succeed.

Attempt transitions (`ATTEMPT_TRANSITIONS`, by `update_attempt` and the store's timeout sweep; the same status is a
no-op). An attempt moves its rollout only while it is the rollout's latest attempt and the rollout is `preparing` or
`running` (the *attempt* rows above); otherwise the change is recorded on the attempt alone.

    preparing → running, succeeded, failed, timeout, unresponsive, cancelled
    running → succeeded, failed, timeout, unresponsive, cancelled
    timeout → succeeded, failed           (a late result, recorded on the attempt only)
    unresponsive → running, succeeded, failed    (its runner came back)
    succeeded, failed, cancelled: final.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from agentlightning.store.base import InvalidTransitionError, NotFoundError
from agentlightning.types import (
    TERMINAL_ROLLOUT_STATUSES,
    Attempt,
    AttemptStatus,
    Rollout,
    RolloutConfig,
    RolloutMode,
    RolloutStatus,
)

__all__ = [
    "ATTEMPT",
    "ATTEMPT_TRANSITIONS",
    "DEQUEUE",
    "ROLLOUT_TRANSITIONS",
    "UPDATE",
    "apply_attempt_status",
    "apply_rollout_status",
    "build_rollout",
    "direct_rollout_updates",
    "expired_status",
    "find_attempt",
    "new_attempt",
    "new_id",
    "patch_attempt",
    "patch_rollout",
    "select_attempt_ids",
    "time_ordered_hex",
]

DEQUEUE: Final = "dequeue"
ATTEMPT: Final = "attempt"
UPDATE: Final = "update"

_BOTH = frozenset({ATTEMPT, UPDATE})
_UPDATE = frozenset({UPDATE})
_DEQUEUE = frozenset({DEQUEUE})

ROLLOUT_TRANSITIONS: Final[Mapping[str, Mapping[str, frozenset[str]]]] = {
    "queuing": {"preparing": _DEQUEUE, "requeuing": _UPDATE, "failed": _UPDATE, "cancelled": _UPDATE},
    "requeuing": {"preparing": _DEQUEUE, "queuing": _UPDATE, "failed": _UPDATE, "cancelled": _UPDATE},
    "preparing": {"running": frozenset({ATTEMPT}), "succeeded": _BOTH, "failed": _BOTH, "cancelled": _BOTH,
                  "requeuing": _BOTH, "queuing": _UPDATE},
    "running": {"succeeded": _BOTH, "failed": _BOTH, "cancelled": _BOTH, "requeuing": _BOTH, "queuing": _UPDATE},
    "succeeded": {},
    "failed": {},
    "cancelled": {},
}
"""from status → {to status: the causes that may make that change} (see the module docstring)."""

ATTEMPT_TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "preparing": frozenset({"running", "succeeded", "failed", "timeout", "unresponsive", "cancelled"}),
    "running": frozenset({"succeeded", "failed", "timeout", "unresponsive", "cancelled"}),
    # A late result after a timeout / lost heartbeat is recorded on the attempt (never on the rollout).
    "timeout": frozenset({"succeeded", "failed"}),
    "unresponsive": frozenset({"running", "succeeded", "failed"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
"""from status → the statuses an attempt may move to."""

_HINTS = {
    "preparing": "Fix: dequeue_rollout() claims a queued rollout (that makes it preparing, with a new attempt)",
    "running": "Fix: the runner reports it on the attempt: update_attempt(rollout_id, attempt_id, status='running')",
    "succeeded": "Fix: a rollout succeeds when its attempt reports update_attempt(..., status='succeeded'); a rollout "
                 "that nothing runs cannot succeed",
}


def direct_rollout_updates() -> dict[str, frozenset[str]]:
    """from status → the statuses `update_rollout(status=...)` may set (the *update* rows of the table)."""
    return {source: frozenset(t for t, causes in targets.items() if UPDATE in causes)
            for source, targets in ROLLOUT_TRANSITIONS.items()}


def _check_rollout_move(rollout: Rollout, status: str, cause: str) -> None:
    if cause in ROLLOUT_TRANSITIONS[rollout.status].get(status, frozenset()):
        return
    if rollout.status in TERMINAL_ROLLOUT_STATUSES:
        raise InvalidTransitionError(
            f"rollout {rollout.rollout_id} is {rollout.status} (final); it cannot become {status}")
    allowed = sorted(t for t, causes in ROLLOUT_TRANSITIONS[rollout.status].items() if cause in causes)
    by = {UPDATE: "update_rollout", DEQUEUE: "dequeue_rollout", ATTEMPT: "an attempt report"}[cause]
    hint = _HINTS.get(status, "") if cause == UPDATE else ""
    hint = hint or "See the table of transitions in agentlightning/store/transitions.py"
    raise InvalidTransitionError(
        f"rollout {rollout.rollout_id} is {rollout.status}; {by} cannot make it {status} (allowed from "
        f"{rollout.status}: {allowed or 'nothing'}). {hint}")


def new_id(prefix: str) -> str:
    """A time-ordered id such as `ro-019af3c2e1d4-5b7e09a1c3f2` (`time_ordered_hex`): ids made later sort later, so a
    store's indexes (SQLite's B-trees keyed by rollout and attempt id) take new rows at their right edge and a write
    touches recent pages however many rollouts are stored (random ids put each insert on a random page of an index
    that grows with history). 1,000 ids made in one millisecond collide with odds ~2e-9."""
    return f"{prefix}-{time_ordered_hex()}"


def time_ordered_hex(random_bits: int = 48) -> str:
    """`<ms since the epoch, 12 hex>-<random_bits random bits, hex>`: sorts by creation time (as a UUIDv7 does)."""
    return f"{time.time_ns() // 1_000_000:012x}-{secrets.randbits(random_bits):0{random_bits // 4}x}"


def build_rollout(
    input: Any,
    mode: RolloutMode | None = None,
    resources_id: str | None = None,
    config: RolloutConfig | dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Rollout:
    """A new `queuing` rollout from `enqueue_rollout`'s arguments (a dict config is validated here)."""
    cfg = config if isinstance(config, RolloutConfig) else RolloutConfig.model_validate(config or {})
    return Rollout(
        rollout_id=new_id("ro"), input=input, mode=mode, resources_id=resources_id, config=cfg, metadata=metadata or {}
    )


def find_attempt(attempts: Sequence[Attempt], rollout_id: str, attempt_id: str) -> tuple[Attempt, bool]:
    """The attempt named `attempt_id` (or `"latest"`) among a rollout's attempts, and whether it is the latest."""
    if attempt_id == "latest":
        if not attempts:
            raise NotFoundError(f"rollout {rollout_id!r} has no attempt yet (it was never dequeued)")
        return attempts[-1], True
    for i, attempt in enumerate(attempts):
        if attempt.attempt_id == attempt_id:
            return attempt, i == len(attempts) - 1
    raise NotFoundError(f"attempt {attempt_id!r} of rollout {rollout_id!r} does not exist")


def select_attempt_ids(attempts: Sequence[Attempt], rollout_id: str, attempt_id: str | None) -> list[str]:
    """Which attempts `query_spans(rollout_id, attempt_id)` reads: None = all, "latest" = the newest, else one."""
    if attempt_id is None:
        return [a.attempt_id for a in attempts]
    if attempt_id == "latest":
        return [attempts[-1].attempt_id] if attempts else []
    return [find_attempt(attempts, rollout_id, attempt_id)[0].attempt_id]


def patch_attempt(
    attempt: Attempt, heartbeat: bool, worker_id: str | None, metadata: dict[str, Any] | None, now: float
) -> Attempt:
    """The non-status part of `update_attempt`: heartbeat time, worker id, merged metadata."""
    changes: dict[str, Any] = {}
    if heartbeat:
        changes["last_heartbeat_time"] = now
    if worker_id is not None:
        changes["worker_id"] = worker_id
    if metadata:
        changes["metadata"] = {**attempt.metadata, **metadata}
    return attempt.model_copy(update=changes)


def patch_rollout(rollout: Rollout, metadata: dict[str, Any] | None, resources_id: str | None) -> Rollout:
    """The non-status part of `update_rollout`: merged metadata and the resources id."""
    changes: dict[str, Any] = {}
    if metadata:
        changes["metadata"] = {**rollout.metadata, **metadata}
    if resources_id is not None:
        changes["resources_id"] = resources_id
    return rollout.model_copy(update=changes)


def new_attempt(rollout: Rollout, worker_id: str | None, now: float) -> tuple[Rollout, Attempt]:
    """Claim a queued rollout: it becomes `preparing` with a fresh attempt numbered after the previous ones."""
    _check_rollout_move(rollout, "preparing", DEQUEUE)
    attempt = Attempt(
        attempt_id=new_id("at"),
        rollout_id=rollout.rollout_id,
        sequence_id=rollout.num_attempts + 1,
        worker_id=worker_id,
        start_time=now,
        last_heartbeat_time=now,
    )
    updated = rollout.model_copy(
        update={
            "status": "preparing",
            "num_attempts": rollout.num_attempts + 1,
            "start_time": rollout.start_time if rollout.start_time is not None else now,
        }
    )
    return updated, attempt


def _rollout_after_failure(rollout: Rollout, outcome: str, now: float) -> Rollout:
    retry = outcome in rollout.config.retry_condition and rollout.num_attempts < rollout.config.max_attempts
    if retry:
        return rollout.model_copy(update={"status": "requeuing"})
    return rollout.model_copy(update={"status": "failed", "end_time": now})


def apply_attempt_status(
    rollout: Rollout, attempt: Attempt, status: AttemptStatus, is_latest: bool, now: float
) -> tuple[Rollout, Attempt]:
    """Move an attempt to `status` and, when it is the latest attempt of a live rollout, move the rollout too."""
    if status == attempt.status:
        return rollout, attempt
    if status not in ATTEMPT_TRANSITIONS[attempt.status]:
        raise InvalidTransitionError(
            f"attempt {attempt.attempt_id} of rollout {attempt.rollout_id} is {attempt.status}; it cannot become "
            f"{status} (allowed: {sorted(ATTEMPT_TRANSITIONS[attempt.status]) or 'none, it is final'})"
        )
    terminal = status not in ("preparing", "running")
    attempt = attempt.model_copy(
        update={"status": status, "end_time": now if terminal else None, "last_heartbeat_time": now}
    )
    if not is_latest or rollout.status not in ("preparing", "running"):
        return rollout, attempt  # recorded on the attempt alone (a superseded attempt, or a rollout that moved on)
    if status == "running":
        moved = rollout.model_copy(update={"status": "running"})
    elif status in ("succeeded", "cancelled"):
        moved = rollout.model_copy(update={"status": status, "end_time": now})
    else:  # failed, timeout, unresponsive
        moved = _rollout_after_failure(rollout, status, now)
    if moved.status != rollout.status:
        _check_rollout_move(rollout, moved.status, ATTEMPT)
    return moved, attempt


def apply_rollout_status(
    rollout: Rollout, attempt: Attempt | None, status: RolloutStatus, now: float
) -> tuple[Rollout, Attempt | None]:
    """Set a rollout's status directly (`update_rollout` / `cancel`), closing its active attempt if needed."""
    if status == rollout.status:
        return rollout, attempt
    _check_rollout_move(rollout, status, UPDATE)
    update: dict[str, object] = {"status": status}
    if status in TERMINAL_ROLLOUT_STATUSES:
        update["end_time"] = now
    if attempt is not None and attempt.is_active:
        closing = {"succeeded": "succeeded", "cancelled": "cancelled"}.get(status, "failed")
        attempt = attempt.model_copy(update={"status": closing, "end_time": now})
    return rollout.model_copy(update=update), attempt


def expired_status(rollout: Rollout, attempt: Attempt, now: float, heard_since: float = 0.0) -> AttemptStatus | None:
    """`timeout` or `unresponsive` when an active attempt has outlived its rollout's config, else None.
    `heard_since`: the time the store could first hear heartbeats again (a store opened after a crash gives every
    runner `unresponsive_seconds` from then: while it was down, no runner could beat)."""
    if not attempt.is_active:
        return None
    cfg = rollout.config
    if cfg.timeout_seconds is not None and now - attempt.start_time > cfg.timeout_seconds:
        return "timeout"
    last = max(attempt.last_heartbeat_time or attempt.start_time, heard_since)
    if cfg.unresponsive_seconds is not None and now - last > cfg.unresponsive_seconds:
        return "unresponsive"
    return None
