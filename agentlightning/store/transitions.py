"""The status machine of `agentlightning.store.base`, as pure functions over `Rollout`/`Attempt` models.

Where this sits: inside every store backend. Backends load the current objects (from a dict or a SQLite row), call
one of these functions under their lock/transaction, and write back what it returns. Keeping the rules here means
the in-memory and SQLite stores cannot drift apart; the contract tests check both.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

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
    "apply_attempt_status",
    "apply_rollout_status",
    "build_rollout",
    "expired_status",
    "find_attempt",
    "new_attempt",
    "new_id",
    "patch_attempt",
    "patch_rollout",
    "select_attempt_ids",
]

_ATTEMPT_NEXT: dict[str, frozenset[str]] = {
    "preparing": frozenset({"running", "succeeded", "failed", "timeout", "unresponsive", "cancelled"}),
    "running": frozenset({"succeeded", "failed", "timeout", "unresponsive", "cancelled"}),
    # A late result after a timeout / lost heartbeat is recorded on the attempt (never on the rollout).
    "timeout": frozenset({"succeeded", "failed"}),
    "unresponsive": frozenset({"running", "succeeded", "failed"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}


def new_id(prefix: str) -> str:
    """A short random id such as `ro-1f3a9c0d2b7e`."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


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
    if rollout.status not in ("queuing", "requeuing"):
        raise InvalidTransitionError(f"rollout {rollout.rollout_id} is {rollout.status}, not queued: cannot dequeue it")
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
    if status not in _ATTEMPT_NEXT[attempt.status]:
        raise InvalidTransitionError(
            f"attempt {attempt.attempt_id} of rollout {attempt.rollout_id} is {attempt.status}; "
            f"it cannot become {status} (allowed: {sorted(_ATTEMPT_NEXT[attempt.status]) or 'none, it is final'})"
        )
    terminal = status not in ("preparing", "running")
    attempt = attempt.model_copy(
        update={"status": status, "end_time": now if terminal else None, "last_heartbeat_time": now}
    )
    if not is_latest or rollout.status in TERMINAL_ROLLOUT_STATUSES or rollout.status in ("queuing", "requeuing"):
        return rollout, attempt
    if status == "running":
        rollout = rollout.model_copy(update={"status": "running"})
    elif status == "succeeded":
        rollout = rollout.model_copy(update={"status": "succeeded", "end_time": now})
    elif status == "cancelled":
        rollout = rollout.model_copy(update={"status": "cancelled", "end_time": now})
    elif status in ("failed", "timeout", "unresponsive"):
        rollout = _rollout_after_failure(rollout, status, now)
    return rollout, attempt


def apply_rollout_status(
    rollout: Rollout, attempt: Attempt | None, status: RolloutStatus, now: float
) -> tuple[Rollout, Attempt | None]:
    """Set a rollout's status directly (`update_rollout` / `cancel`), closing its active attempt if needed."""
    if status == rollout.status:
        return rollout, attempt
    if rollout.status in TERMINAL_ROLLOUT_STATUSES:
        raise InvalidTransitionError(
            f"rollout {rollout.rollout_id} is {rollout.status} (final); it cannot become {status}"
        )
    if status in ("preparing", "running") and attempt is None:
        raise InvalidTransitionError(
            f"rollout {rollout.rollout_id} has no attempt; it cannot become {status}. Fix: dequeue_rollout() claims it"
        )
    update: dict[str, object] = {"status": status}
    if status in TERMINAL_ROLLOUT_STATUSES:
        update["end_time"] = now
    if attempt is not None and attempt.is_active and status not in ("preparing", "running"):
        closing = {"succeeded": "succeeded", "cancelled": "cancelled"}.get(status, "failed")
        attempt = attempt.model_copy(update={"status": closing, "end_time": now})
    return rollout.model_copy(update=update), attempt


def expired_status(rollout: Rollout, attempt: Attempt, now: float) -> AttemptStatus | None:
    """`timeout` or `unresponsive` when an active attempt has outlived its rollout's config, else None."""
    if not attempt.is_active:
        return None
    cfg = rollout.config
    if cfg.timeout_seconds is not None and now - attempt.start_time > cfg.timeout_seconds:
        return "timeout"
    last = attempt.last_heartbeat_time or attempt.start_time
    if cfg.unresponsive_seconds is not None and now - last > cfg.unresponsive_seconds:
        return "unresponsive"
    return None
