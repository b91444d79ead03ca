"""The SQLite store's write-ahead-log checkpoints run on their own thread, outside requests, and still keep the log
short under writes that never pause (`store/sqlite.py`)."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from agentlightning.store import SqliteLightningStore
from agentlightning.types import Span


def _checkpointers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "agl-sqlite-checkpoint"}


def _others() -> set[threading.Thread]:
    """Checkpoint threads of stores from earlier tests (a store in a reference cycle lives until the collector runs):
    not this test's business."""
    gc.collect()
    return _checkpointers()


def _log_frames(path: Path) -> int:
    """Frames in the current write-ahead log, as a passive checkpoint from another connection reports them."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        conn.close()


async def test_requests_never_checkpoint_and_the_log_restarts_under_continuous_writes(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    others = _others()
    store = SqliteLightningStore(path, checkpoint_seconds=0.05)
    try:
        autocheckpoint = await store._run(lambda conn: conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        assert autocheckpoint == 0  # no checkpoint inside a commit
        written, deadline = 0, time.monotonic() + 2.0

        async def writer(w: int) -> None:  # 4 of them: a transaction is always waiting for the store thread
            nonlocal written
            while time.monotonic() < deadline:
                await store.enqueue_rollout({"w": w})
                claimed = await store.dequeue_rollout()
                assert claimed is not None
                rid, aid = claimed.rollout_id, claimed.attempt.attempt_id
                await store.add_spans([Span(rollout_id=rid, attempt_id=aid, span_id=f"s{k}", name="llm.call",
                                            start_time=0.0, end_time=0.0, attributes={"ids": list(range(256))})
                                       for k in range(4)])
                await store.update_attempt(rid, aid, status="succeeded")
                written += 1

        await asyncio.gather(*(writer(w) for w in range(4)))
        frames = _log_frames(path)
        # without the store thread finishing each checkpoint, the log would hold every frame written (thousands)
        assert frames < 2000, f"the write-ahead log kept growing: {frames} frames after {written} rollouts"
        assert written > 50, f"only {written} rollouts in 2 s"
    finally:
        await store.close()
    assert not _checkpointers() - others, "close() left the store's checkpoint thread running"


def test_checkpoint_thread_ends_with_an_unclosed_store(tmp_path: Path) -> None:
    others = _others()
    store = SqliteLightningStore(tmp_path / "store.sqlite", checkpoint_seconds=0.05)
    ours = _checkpointers() - others
    assert len(ours) == 1
    del store
    gc.collect()
    deadline = time.monotonic() + 2.0
    while ours & _checkpointers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ours & _checkpointers(), "a forgotten store's checkpoint thread keeps running (and keeps the store alive)"


def test_bad_checkpoint_period_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"checkpoint_seconds=0.*> 0.*Fix"):
        SqliteLightningStore(tmp_path / "store.sqlite", checkpoint_seconds=0)


async def test_another_handle_sees_every_write_while_checkpoints_run(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    a = SqliteLightningStore(path, checkpoint_seconds=0.02)
    b = SqliteLightningStore(path, checkpoint_seconds=0.02)
    try:
        ids = [(await a.enqueue_rollout({"i": i})).rollout_id for i in range(200)]
        await asyncio.sleep(0.1)
        seen = await b.query_rollouts(rollout_ids=ids)
        assert [r.rollout_id for r in seen] == ids
    finally:
        await a.close()
        await b.close()
