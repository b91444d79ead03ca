"""The status machine, pair by pair: every rollout status × every status `update_rollout` may be asked for, and every
attempt status × every status `update_attempt` may be asked for, on every backend (memory, SQLite, HTTP over both).

The expected tables are written out here, independently of `agentlightning/store/transitions.py`, so a change to the
store's table has to change this file too (and say why).
"""

from __future__ import annotations

import pytest

from agentlightning.store import InvalidTransitionError, LightningStore
from agentlightning.store import transitions as tables
from agentlightning.types import Attempt, AttemptStatus, Rollout, RolloutConfig, RolloutStatus

ROLLOUT_STATUSES: list[RolloutStatus] = ["queuing", "requeuing", "preparing", "running", "succeeded", "failed",
                                         "cancelled"]
ATTEMPT_STATUSES: list[AttemptStatus] = ["preparing", "running", "succeeded", "failed", "timeout", "unresponsive",
                                         "cancelled"]

# update_rollout(status=to) from each status; setting the status a rollout already has is always a no-op.
# Everything else raises InvalidTransitionError: preparing/running come only from dequeue_rollout and the attempt's
# own reports, and a rollout that nothing runs cannot succeed.
DIRECT_ROLLOUT_UPDATES: dict[str, set[str]] = {
    "queuing": {"requeuing", "failed", "cancelled"},
    "requeuing": {"queuing", "failed", "cancelled"},
    "preparing": {"queuing", "requeuing", "succeeded", "failed", "cancelled"},
    "running": {"queuing", "requeuing", "succeeded", "failed", "cancelled"},
    "succeeded": set(),
    "failed": set(),
    "cancelled": set(),
}

# update_attempt(status=to) on the latest attempt; the same status is a no-op.
ATTEMPT_UPDATES: dict[str, set[str]] = {
    "preparing": {"running", "succeeded", "failed", "timeout", "unresponsive", "cancelled"},
    "running": {"succeeded", "failed", "timeout", "unresponsive", "cancelled"},
    "timeout": {"succeeded", "failed"},  # a late result, recorded on the attempt only
    "unresponsive": {"running", "succeeded", "failed"},  # a runner that comes back
    "succeeded": set(),
    "failed": set(),
    "cancelled": set(),
}

# What a direct update does to the active attempt of a claimed (preparing/running) rollout.
CLOSING = {"queuing": "failed", "requeuing": "failed", "succeeded": "succeeded", "failed": "failed",
           "cancelled": "cancelled"}


def test_the_store_table_is_the_documented_table() -> None:
    assert {k: set(v) for k, v in tables.direct_rollout_updates().items()} == DIRECT_ROLLOUT_UPDATES
    assert {k: set(v) for k, v in tables.ATTEMPT_TRANSITIONS.items()} == ATTEMPT_UPDATES
    assert set(tables.ROLLOUT_TRANSITIONS) == set(ROLLOUT_STATUSES)
    for source, targets in tables.ROLLOUT_TRANSITIONS.items():
        assert source not in targets and all(causes for causes in targets.values())
    doc = tables.__doc__ or ""
    for source, targets in tables.ROLLOUT_TRANSITIONS.items():  # the docstring shows the table it enforces
        for target in targets:
            assert f"{source} → {target}" in doc, f"{source} → {target} is missing from the transitions docstring"


async def _rollout_in(store: LightningStore, status: RolloutStatus) -> tuple[Rollout, Attempt | None]:
    """A fresh rollout in `status`, reached only through dequeue and attempt reports (never update_rollout)."""
    config = RolloutConfig(max_attempts=2, retry_condition=["failed"]) if status == "requeuing" else None
    rollout = await store.enqueue_rollout({"want": status}, config=config)
    if status == "queuing":
        return rollout, None
    claimed = await store.dequeue_rollout("w")
    assert claimed is not None and claimed.rollout_id == rollout.rollout_id, "the queue must be empty between cases"
    rid, aid = rollout.rollout_id, claimed.attempt.attempt_id
    attempt_status = {"requeuing": "failed", "preparing": None, "running": "running", "succeeded": "succeeded",
                      "failed": "failed", "cancelled": "cancelled"}[status]
    if attempt_status is not None:
        await store.update_attempt(rid, aid, status=attempt_status)  # type: ignore[arg-type]
    got = await store.get_rollout_by_id(rid)
    assert got.status == status, f"set-up reached {got.status}, not {status}"
    return got, (await store.query_attempts(rid))[-1]


async def _clear(store: LightningStore, rollout_id: str) -> None:
    """Leave nothing queued or claimed behind, so the next case's dequeue claims its own rollout."""
    if not (await store.get_rollout_by_id(rollout_id)).is_terminal:
        await store.cancel(rollout_id)


@pytest.mark.parametrize("source", ROLLOUT_STATUSES)
async def test_update_rollout_every_pair(store: LightningStore, source: RolloutStatus) -> None:
    wrong: list[str] = []
    for target in ROLLOUT_STATUSES:
        rollout, attempt = await _rollout_in(store, source)
        rid = rollout.rollout_id
        allowed = target == source or target in DIRECT_ROLLOUT_UPDATES[source]
        try:
            updated = await store.update_rollout(rid, status=target)
        except InvalidTransitionError as exc:
            if allowed:
                wrong.append(f"{source} → {target}: refused ({exc})")
            elif not all(word in str(exc) for word in (rid, source, target)):
                wrong.append(f"{source} → {target}: the error must name the rollout, both states: {exc}")
            after = await store.get_rollout_by_id(rid)
            if after.status != source:
                wrong.append(f"{source} → {target}: refused but the rollout moved to {after.status}")
        else:
            if not allowed:
                wrong.append(f"{source} → {target}: accepted (became {updated.status}); it must be refused")
            elif updated.status != target or (await store.get_rollout_by_id(rid)).status != target:
                wrong.append(f"{source} → {target}: answered {updated.status}")
            elif attempt is not None and target != source:
                latest = (await store.query_attempts(rid))[-1]
                expected = CLOSING.get(target, attempt.status) if attempt.is_active else attempt.status
                if latest.status != expected:
                    wrong.append(f"{source} → {target}: its attempt is {latest.status}, expected {expected}")
            if allowed and target in ("queuing", "requeuing"):  # back in the queue means a runner can claim it
                claimed = await store.dequeue_rollout("w2")
                if claimed is None or claimed.rollout_id != rid:
                    wrong.append(f"{source} → {target}: the rollout is not claimable afterwards")
        await _clear(store, rid)
    assert not wrong, "\n".join(wrong)


async def _attempt_in(store: LightningStore, status: AttemptStatus) -> tuple[Rollout, Attempt]:
    rollout = await store.enqueue_rollout({"want": status})
    claimed = await store.dequeue_rollout("w")
    assert claimed is not None and claimed.rollout_id == rollout.rollout_id, "the queue must be empty between cases"
    if status != "preparing":
        await store.update_attempt(rollout.rollout_id, claimed.attempt.attempt_id, status=status)
    attempt = (await store.query_attempts(rollout.rollout_id))[-1]
    assert attempt.status == status
    return await store.get_rollout_by_id(rollout.rollout_id), attempt


def _rollout_after(rollout: Rollout, attempt: Attempt, target: str) -> str:
    """The rollout's status after its latest attempt moves to `target` (max_attempts=1: failures are final)."""
    if rollout.status not in ("preparing", "running") or target == attempt.status:
        return rollout.status
    return {"preparing": "preparing", "running": "running", "succeeded": "succeeded",
            "cancelled": "cancelled"}.get(target, "failed")


@pytest.mark.parametrize("source", ATTEMPT_STATUSES)
async def test_update_attempt_every_pair(store: LightningStore, source: AttemptStatus) -> None:
    wrong: list[str] = []
    for target in ATTEMPT_STATUSES:
        rollout, attempt = await _attempt_in(store, source)
        rid, aid = rollout.rollout_id, attempt.attempt_id
        allowed = target == source or target in ATTEMPT_UPDATES[source]
        try:
            updated = await store.update_attempt(rid, aid, status=target)
        except InvalidTransitionError as exc:
            if allowed:
                wrong.append(f"{source} → {target}: refused ({exc})")
            elif not all(word in str(exc) for word in (aid, source, target)):
                wrong.append(f"{source} → {target}: the error must name the attempt, both states: {exc}")
            if (await store.query_attempts(rid))[-1].status != source:
                wrong.append(f"{source} → {target}: refused but the attempt moved")
        else:
            if not allowed:
                wrong.append(f"{source} → {target}: accepted; it must be refused")
            elif updated.status != target:
                wrong.append(f"{source} → {target}: answered {updated.status}")
            after = (await store.get_rollout_by_id(rid)).status
            if allowed and after != _rollout_after(rollout, attempt, target):
                wrong.append(f"{source} → {target}: rollout {rollout.status} became {after}, expected "
                             f"{_rollout_after(rollout, attempt, target)}")
        await _clear(store, rid)
    assert not wrong, "\n".join(wrong)


def test_ids_and_keys_sort_by_creation_time_and_do_not_repeat() -> None:
    """Time-ordered ids keep SQLite's id indexes writing at their right edge (store/transitions.py `new_id`)."""
    import time

    from agentlightning.store.idempotency import new_key

    for make in (lambda: tables.new_id("ro"), new_key):
        early = [make() for _ in range(2000)]
        time.sleep(0.002)
        late = make()
        assert len(set(early)) == len(early)
        assert all(old < late for old in early), "an id made later must sort after every earlier one"
    rollout_id = tables.new_id("ro")
    prefix, stamp, _random = rollout_id.split("-")
    assert prefix == "ro" and abs(int(stamp, 16) - time.time() * 1000) < 60_000, rollout_id
