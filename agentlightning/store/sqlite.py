"""`SqliteLightningStore`: the durable store, one SQLite file in WAL mode (contract: `store/base.py`).

Where this sits: like the in-memory store, but a store process that dies (even by SIGKILL) loses nothing it has
acknowledged: every method is one transaction (`BEGIN IMMEDIATE`, committed before it returns). With
`synchronous=NORMAL` in WAL mode a committed transaction survives a killed process (it is in the OS's file cache);
pass `synchronous="FULL"` to survive power loss too, at an fsync per write.

On open the store sweeps once, so attempts that ran out their `timeout_seconds` while the process was down are marked
and their rollouts requeued or failed per config. Heartbeats count from the open at the earliest: while the store was
down no runner could beat, so an attempt is `unresponsive` only when it stays silent for `unresponsive_seconds` after
the store came back (a live runner keeps its claim across a store restart; a dead one's rollout is requeued then).

Idempotency keys (`store/idempotency.py`) live in the table `idempotency`, looked up and written in the transaction of
the change they guard, so they survive a restart of the store; keys older than an hour are pruned as new ones come.

Input rules (`store/validation.py`) are checked in the transaction of the change: a span batch with any bad span rolls
back whole. Spans are indexed by `(attempt_id, span_id)` so a re-sent span is found and answered with the stored one;
a file written before that column existed gets it (filled from the stored spans) when it is opened.

All SQLite work happens on one private thread (sqlite3 connections are not thread-safe); several processes may open
the same file: SQLite's file lock plus `BEGIN IMMEDIATE` make `dequeue_rollout` atomic across them too.

Checkpoints (copying the write-ahead log back into the file, with its fsyncs) run on a second thread with its own
connection, every `checkpoint_seconds`, never inside a request: SQLite's default runs one inside whichever commit
crosses 1,000 log pages, and in a large file that commit then waits for scattered page writes and an fsync of
everything the OS holds for the file. WAL readers and writers do not wait for a checkpoint.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

from agentlightning.store.base import LightningStore, NotFoundError, RolloutRequest
from agentlightning.store.idempotency import ANSWERS, DEFAULT_TTL_SECONDS, MISS, wrong_method
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

__all__ = ["SqliteLightningStore"]

T = TypeVar("T")
logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollouts (
    rollout_id TEXT PRIMARY KEY, status TEXT NOT NULL, queue_order INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS rollouts_status ON rollouts(status, queue_order);
CREATE INDEX IF NOT EXISTS rollouts_queue_order ON rollouts(queue_order);
CREATE TABLE IF NOT EXISTS attempts (
    attempt_id TEXT PRIMARY KEY, rollout_id TEXT NOT NULL, sequence_id INTEGER NOT NULL,
    span_counter INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS attempts_rollout ON attempts(rollout_id, sequence_id);
CREATE TABLE IF NOT EXISTS spans (
    rollout_id TEXT NOT NULL, attempt_id TEXT NOT NULL, sequence_id INTEGER NOT NULL, data TEXT NOT NULL,
    span_id TEXT);
CREATE INDEX IF NOT EXISTS spans_attempt ON spans(rollout_id, attempt_id, sequence_id);
CREATE TABLE IF NOT EXISTS resources (
    resources_id TEXT PRIMARY KEY, version INTEGER NOT NULL, touched INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, method TEXT NOT NULL, created REAL NOT NULL, answer TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency(created);
"""
_PRUNE_EVERY = 1000  # keyed writes between two prunes of expired keys
_WAL_KEEP_BYTES = 64 << 20  # a write-ahead log restarted after a checkpoint is cut back to this size


class SqliteLightningStore(LightningStore):
    """A store backed by the SQLite file at `path` (created if missing)."""

    def __init__(self, path: str | Path, synchronous: Literal["NORMAL", "FULL"] = "NORMAL", poll_seconds: float = 0.05,
                 checkpoint_seconds: float = 1.0):
        if not checkpoint_seconds > 0:
            raise ValueError(f"checkpoint_seconds={checkpoint_seconds!r}: the period of the store's WAL checkpoints "
                             "must be > 0. Fix: pass a positive number of seconds (default 1.0)")
        self.path = Path(path)
        self.poll_seconds = poll_seconds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agl-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._keyed_writes = 0
        self._executor.submit(self._open, synchronous).result()
        self._stop_checkpoints = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="agl-sqlite-checkpoint", daemon=True,
            args=(weakref.ref(self), self.path, self._stop_checkpoints, synchronous, checkpoint_seconds))
        self._checkpointer.start()

    # ------------------------------------------------------------------ plumbing
    def _open(self, synchronous: str) -> None:
        if self.path.parent and not self.path.parent.exists():
            raise NotFoundError(f"folder {self.path.parent} for the SQLite store does not exist. Fix: create it first")
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # (the checkpoint thread does it, outside requests)
        conn.execute(f"PRAGMA journal_size_limit={_WAL_KEEP_BYTES}")
        conn.executescript(_SCHEMA)
        self._conn = conn
        self._opened_at = time.time()  # runners could not heartbeat while no store had the file open
        self._tx(self._migrate)
        self._tx(self._sweep)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Bring a file written by an older version up to this schema (in a transaction: other openers wait)."""
        if "span_id" not in {row[1] for row in conn.execute("PRAGMA table_info(spans)")}:
            conn.execute("ALTER TABLE spans ADD COLUMN span_id TEXT")
            rows = conn.execute("SELECT rowid, data FROM spans").fetchall()
            conn.executemany("UPDATE spans SET span_id=? WHERE rowid=?",
                             [(json.loads(data).get("span_id"), rowid) for rowid, data in rows])
        conn.execute("CREATE INDEX IF NOT EXISTS spans_span_id ON spans(attempt_id, span_id)")

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in one IMMEDIATE transaction on the store thread."""
        assert self._conn is not None
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    @staticmethod
    def _checkpoint_loop(store_ref: weakref.ref[SqliteLightningStore], path: Path, stop: threading.Event,
                         synchronous: str, period: float) -> None:
        """Checkpoint the write-ahead log every `period` seconds on this thread's own connection, until the store is
        closed or collected (the thread holds no strong reference to it)."""
        conn = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
            seen = -1  # log size at the last pass: an idle store's log does not change, and needs no second step
            while not stop.wait(period) and (store := store_ref()) is not None:
                try:  # PASSIVE: copies what no reader still needs and waits for nobody
                    _, logged, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if logged > 0 and logged != seen and not store._closed:
                        # the log restarts (instead of growing) only when a write begins with all of it copied; under
                        # steady writes one is always under way while this runs, so the store thread copies the
                        # (short) rest between two requests, and its next write starts the log afresh
                        store._executor.submit(store._finish_checkpoint).result()
                    seen = logged
                except (sqlite3.Error, RuntimeError) as exc:  # (RuntimeError: the executor shut down at close)
                    logger.warning("SQLite store %s: checkpoint failed (%s); retrying in %.1f s", path, exc, period)
                del store
        finally:
            conn.close()

    def _finish_checkpoint(self) -> None:
        if self._conn is not None:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise RuntimeError(f"SqliteLightningStore({self.path}) is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._tx, fn)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        self._stop_checkpoints.set()
        await asyncio.to_thread(self._checkpointer.join)
        await asyncio.get_running_loop().run_in_executor(self._executor, _close)
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------------ idempotency keys (store thread only)
    @staticmethod
    def _key_get(conn: sqlite3.Connection, key: str | None, method: str) -> Any:
        if key is None:
            return MISS
        row = conn.execute("SELECT method, created, answer FROM idempotency WHERE key=?", (key,)).fetchone()
        if row is None or time.time() - row[1] > DEFAULT_TTL_SECONDS:
            return MISS
        if row[0] != method:
            raise wrong_method(key, row[0], method)
        return ANSWERS[method].validate_json(row[2])

    def _key_put(self, conn: sqlite3.Connection, key: str | None, method: str, answer: Any) -> None:
        if key is None:
            return
        now = time.time()
        conn.execute("INSERT OR REPLACE INTO idempotency(key, method, created, answer) VALUES (?, ?, ?, ?)",
                     (key, method, now, ANSWERS[method].dump_json(answer).decode()))
        self._keyed_writes += 1
        if self._keyed_writes % _PRUNE_EVERY == 0:
            conn.execute("DELETE FROM idempotency WHERE created < ?", (now - DEFAULT_TTL_SECONDS,))

    def _keyed(self, key: str | None, method: str, fn: Callable[[sqlite3.Connection], T]
               ) -> Callable[[sqlite3.Connection], T]:
        """`fn` wrapped so that, in its transaction, a known key answers its first answer and a new one is recorded."""
        def op(conn: sqlite3.Connection) -> T:
            if (first := self._key_get(conn, key, method)) is not MISS:
                return first
            answer = fn(conn)
            self._key_put(conn, key, method, answer)
            return answer

        return op

    # ------------------------------------------------------------------ row helpers (store thread only)
    @staticmethod
    def _get_rollout(conn: sqlite3.Connection, rollout_id: str) -> Rollout:
        row = conn.execute("SELECT data FROM rollouts WHERE rollout_id=?", (rollout_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"rollout {rollout_id!r} does not exist in this store")
        return Rollout.model_validate_json(row[0])

    @staticmethod
    def _get_attempts(conn: sqlite3.Connection, rollout_id: str) -> list[Attempt]:
        rows = conn.execute("SELECT data FROM attempts WHERE rollout_id=? ORDER BY sequence_id", (rollout_id,))
        return [Attempt.model_validate_json(r[0]) for r in rows]

    def _get_attempt(self, conn: sqlite3.Connection, rollout_id: str, attempt_id: str) -> tuple[Attempt, bool]:
        return find_attempt(self._get_attempts(conn, rollout_id), rollout_id, attempt_id)

    @staticmethod
    def _next_queue_order(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT COALESCE(MAX(queue_order), 0) + 1 FROM rollouts").fetchone()[0])

    def _save(self, conn: sqlite3.Connection, rollout: Rollout, attempt: Attempt | None = None) -> None:
        previous = conn.execute("SELECT status FROM rollouts WHERE rollout_id=?", (rollout.rollout_id,)).fetchone()[0]
        if rollout.status in ("queuing", "requeuing") and previous not in ("queuing", "requeuing"):
            conn.execute("UPDATE rollouts SET queue_order=? WHERE rollout_id=?",
                         (self._next_queue_order(conn), rollout.rollout_id))
        conn.execute("UPDATE rollouts SET status=?, data=? WHERE rollout_id=?",
                     (rollout.status, rollout.model_dump_json(), rollout.rollout_id))
        if attempt is not None:
            conn.execute("UPDATE attempts SET data=? WHERE attempt_id=?", (attempt.model_dump_json(), attempt.attempt_id))

    def _sweep(self, conn: sqlite3.Connection) -> None:
        now = time.time()
        rows = conn.execute("SELECT data FROM rollouts WHERE status IN ('preparing', 'running')").fetchall()
        for (data,) in rows:
            rollout = Rollout.model_validate_json(data)
            if rollout.config.timeout_seconds is None and rollout.config.unresponsive_seconds is None:
                continue
            attempt = self._get_attempts(conn, rollout.rollout_id)[-1]
            status = expired_status(rollout, attempt, now, heard_since=self._opened_at)
            if status is not None:
                self._save(conn, *apply_attempt_status(rollout, attempt, status, True, now))

    # ------------------------------------------------------------------ rollouts
    async def enqueue_many_rollouts(self, requests: Sequence[RolloutRequest], idempotency_key: str | None = None
                                    ) -> list[Rollout]:
        rollouts = [build_rollout(**request) for request in requests]

        def op(conn: sqlite3.Connection) -> list[Rollout]:
            order = self._next_queue_order(conn)
            conn.executemany(
                "INSERT INTO rollouts(rollout_id, status, queue_order, data) VALUES (?, ?, ?, ?)",
                [(r.rollout_id, r.status, order + i, r.model_dump_json()) for i, r in enumerate(rollouts)],
            )
            return rollouts

        return await self._run(self._keyed(idempotency_key, "enqueue_many_rollouts", op))

    async def dequeue_rollout(self, worker_id: str | None = None, wait_seconds: float = 0.0,
                              idempotency_key: str | None = None) -> AttemptedRollout | None:
        deadline = time.monotonic() + max(0.0, wait_seconds)
        swept = time.monotonic()
        while True:
            claimed = await self._dequeue_once(worker_id, idempotency_key)  # a write transaction that also sweeps expired attempts
            if claimed is not None or time.monotonic() >= deadline:
                return claimed
            # other processes may enqueue into the same file: poll it with a read of the status index, and claim
            # (write) only when it shows a queued rollout, or once a second to sweep
            while time.monotonic() < deadline and time.monotonic() - swept < 1.0:
                await asyncio.sleep(min(self.poll_seconds, max(0.0, deadline - time.monotonic())))
                if await self._anything_queued():
                    break
            swept = time.monotonic()

    async def _anything_queued(self) -> bool:
        def probe() -> bool:
            assert self._conn is not None
            return self._conn.execute(
                "SELECT 1 FROM rollouts WHERE status IN ('queuing', 'requeuing') LIMIT 1").fetchone() is not None

        if self._closed:
            raise RuntimeError(f"SqliteLightningStore({self.path}) is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, probe)

    async def _dequeue_once(self, worker_id: str | None, key: str | None) -> AttemptedRollout | None:
        def op(conn: sqlite3.Connection) -> AttemptedRollout | None:
            if (first := self._key_get(conn, key, "dequeue_rollout")) is not MISS:
                return first  # (an empty answer is not recorded: repeating it just polls again)
            self._sweep(conn)
            row = conn.execute(
                "SELECT data FROM rollouts WHERE status IN ('queuing', 'requeuing') ORDER BY queue_order LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            rollout, attempt = new_attempt(Rollout.model_validate_json(row[0]), worker_id, time.time())
            conn.execute("INSERT INTO attempts(attempt_id, rollout_id, sequence_id, data) VALUES (?, ?, ?, ?)",
                         (attempt.attempt_id, attempt.rollout_id, attempt.sequence_id, attempt.model_dump_json()))
            self._save(conn, rollout)
            claimed = AttemptedRollout(**rollout.model_dump(), attempt=attempt)
            self._key_put(conn, key, "dequeue_rollout", claimed)
            return claimed

        return await self._run(op)

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
        def op(conn: sqlite3.Connection) -> Attempt:
            rollout = self._get_rollout(conn, rollout_id)
            attempt, is_latest = self._get_attempt(conn, rollout_id, attempt_id)
            now = time.time()
            attempt = patch_attempt(attempt, heartbeat, worker_id, metadata, now)
            if status is not None:
                rollout, attempt = apply_attempt_status(rollout, attempt, status, is_latest, now)
            self._save(conn, rollout, attempt)
            return attempt

        return await self._run(self._keyed(idempotency_key, "update_attempt", op))

    async def update_rollout(
        self,
        rollout_id: str,
        status: RolloutStatus | None = None,
        metadata: dict[str, Any] | None = None,
        resources_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Rollout:
        def op(conn: sqlite3.Connection) -> Rollout:
            rollout = self._get_rollout(conn, rollout_id)
            attempts = self._get_attempts(conn, rollout_id)
            attempt = attempts[-1] if attempts else None
            if status is not None:
                rollout, attempt = apply_rollout_status(rollout, attempt, status, time.time())
            rollout = patch_rollout(rollout, metadata, resources_id)
            self._save(conn, rollout, attempt)
            return rollout

        return await self._run(self._keyed(idempotency_key, "update_rollout", op))

    async def wait_for_rollouts(self, rollout_ids: Sequence[str], timeout: float | None = None) -> list[Rollout]:
        check_wait_seconds("timeout", timeout, "wait_for_rollouts")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            rollouts = await self._run(lambda conn: (self._sweep(conn),
                                                     [self._get_rollout(conn, r) for r in rollout_ids])[1])
            done = [r for r in rollouts if r.status in TERMINAL_ROLLOUT_STATUSES]
            if len(done) == len(rollout_ids) or (deadline is not None and time.monotonic() >= deadline):
                return done
            await asyncio.sleep(self.poll_seconds)

    async def query_rollouts(
        self, status: Sequence[RolloutStatus] | None = None, rollout_ids: Sequence[str] | None = None
    ) -> list[Rollout]:
        def op(conn: sqlite3.Connection) -> list[Rollout]:
            # (reads only the rows asked for, through the indexes: cost grows with the answer, not the history)
            self._sweep(conn)
            if rollout_ids is not None:
                by_id: dict[str, Rollout] = {}
                ids = list(dict.fromkeys(rollout_ids))
                for first in range(0, len(ids), 500):
                    chunk = ids[first: first + 500]
                    for (data,) in conn.execute(f"SELECT data FROM rollouts WHERE rollout_id IN "
                                                f"({','.join('?' * len(chunk))})", chunk):
                        rollout = Rollout.model_validate_json(data)
                        by_id[rollout.rollout_id] = rollout
                rollouts = [by_id[r] for r in rollout_ids if r in by_id]
                return [r for r in rollouts if status is None or r.status in status]
            if status is None:
                rows = conn.execute("SELECT data FROM rollouts ORDER BY rowid").fetchall()
            else:
                wanted = list(dict.fromkeys(status))
                rows = conn.execute(f"SELECT data FROM rollouts WHERE status IN ({','.join('?' * len(wanted))}) "
                                    "ORDER BY rowid", wanted).fetchall()
            return [Rollout.model_validate_json(d) for (d,) in rows]

        return await self._run(op)

    async def get_rollout_by_id(self, rollout_id: str) -> Rollout:
        return await self._run(lambda conn: (self._sweep(conn), self._get_rollout(conn, rollout_id))[1])

    async def query_attempts(self, rollout_id: str) -> list[Attempt]:
        def op(conn: sqlite3.Connection) -> list[Attempt]:
            self._get_rollout(conn, rollout_id)
            self._sweep(conn)
            return self._get_attempts(conn, rollout_id)

        return await self._run(op)

    # ------------------------------------------------------------------ spans
    def _next_sequence_id(self, conn: sqlite3.Connection, rollout_id: str, attempt_id: str) -> int:
        self._get_rollout(conn, rollout_id)
        attempt, _ = self._get_attempt(conn, rollout_id, attempt_id)
        return self._bump_span_counter(conn, rollout_id, attempt.attempt_id)

    @staticmethod
    def _bump_span_counter(conn: sqlite3.Connection, rollout_id: str, attempt_id: str) -> int:
        current = int(conn.execute("SELECT span_counter FROM attempts WHERE attempt_id=?", (attempt_id,)).fetchone()[0])
        check_next_sequence_id(rollout_id, attempt_id, current)
        conn.execute("UPDATE attempts SET span_counter=? WHERE attempt_id=?", (current + 1, attempt_id))
        return current + 1

    async def get_next_span_sequence_id(self, rollout_id: str, attempt_id: str) -> int:
        return await self._run(lambda conn: self._next_sequence_id(conn, rollout_id, attempt_id))

    def _check_span_attempt(self, conn: sqlite3.Connection, rollout_id: str, attempt_id: str) -> None:
        self._get_rollout(conn, rollout_id)
        self._get_attempt(conn, rollout_id, attempt_id)

    @staticmethod
    def _stored_span(conn: sqlite3.Connection, rollout_id: str, attempt_id: str, span_id: str) -> Span | None:
        row = conn.execute("SELECT data FROM spans WHERE attempt_id=? AND span_id=? AND rollout_id=? ORDER BY rowid "
                           "LIMIT 1", (attempt_id, span_id, rollout_id)).fetchone()
        return None if row is None else Span.model_validate_json(row[0])

    async def add_spans(self, spans: Sequence[Span], idempotency_key: str | None = None) -> list[Span]:
        def op(conn: sqlite3.Connection) -> list[Span]:
            # (all or nothing: any error below rolls the whole transaction back)
            plan = check_span_batch(spans, lambda r, a: self._check_span_attempt(conn, r, a),
                                    lambda r, a, s: self._stored_span(conn, r, a, s))
            stored: list[Span] = []
            for span, repeat in zip(spans, plan, strict=True):
                if repeat is not None:  # a re-sent span: answered with the stored one (or the batch's earlier)
                    stored.append(stored[repeat] if isinstance(repeat, int) else repeat)
                    continue
                if span.sequence_id is None:
                    span = span.model_copy(
                        update={"sequence_id": self._bump_span_counter(conn, span.rollout_id, span.attempt_id)})
                else:
                    conn.execute("UPDATE attempts SET span_counter = MAX(span_counter, ?) WHERE attempt_id=?",
                                 (span.sequence_id, span.attempt_id))
                conn.execute("INSERT INTO spans(rollout_id, attempt_id, span_id, sequence_id, data) VALUES "
                             "(?, ?, ?, ?, ?)", (span.rollout_id, span.attempt_id, span.span_id, span.sequence_id,
                                                 span.model_dump_json()))
                stored.append(span)
            return stored

        return await self._run(self._keyed(idempotency_key, "add_spans", op))

    async def query_spans(self, rollout_id: str, attempt_id: str | Literal["latest"] | None = "latest") -> list[Span]:
        def op(conn: sqlite3.Connection) -> list[Span]:
            self._get_rollout(conn, rollout_id)
            chosen = select_attempt_ids(self._get_attempts(conn, rollout_id), rollout_id, attempt_id)
            spans: list[Span] = []
            for aid in chosen:
                rows = conn.execute("SELECT data FROM spans WHERE rollout_id=? AND attempt_id=? ORDER BY sequence_id",
                                    (rollout_id, aid))
                spans.extend(Span.model_validate_json(r[0]) for r in rows)
            return spans

        return await self._run(op)

    # ------------------------------------------------------------------ resources
    async def update_resources(self, resources_id: str, resources: NamedResources,
                               idempotency_key: str | None = None) -> ResourcesUpdate:
        check_resources_id(resources_id)
        payload = {k: v if isinstance(v, dict) else v.model_dump() for k, v in resources.items()}

        def op(conn: sqlite3.Connection) -> ResourcesUpdate:
            row = conn.execute("SELECT version FROM resources WHERE resources_id=?", (resources_id,)).fetchone()
            update = ResourcesUpdate.model_validate(
                {"resources_id": resources_id, "version": (row[0] + 1) if row else 1, "resources": payload})
            touched = int(conn.execute("SELECT COALESCE(MAX(touched), 0) + 1 FROM resources").fetchone()[0])
            conn.execute("INSERT OR REPLACE INTO resources(resources_id, version, touched, data) VALUES (?, ?, ?, ?)",
                         (resources_id, update.version, touched, update.model_dump_json()))
            return update

        return await self._run(self._keyed(idempotency_key, "update_resources", op))

    async def get_latest_resources(self) -> ResourcesUpdate | None:
        def op(conn: sqlite3.Connection) -> ResourcesUpdate | None:
            row = conn.execute("SELECT data FROM resources ORDER BY touched DESC LIMIT 1").fetchone()
            return ResourcesUpdate.model_validate_json(row[0]) if row else None

        return await self._run(op)

    async def get_resources_by_id(self, resources_id: str) -> ResourcesUpdate:
        def op(conn: sqlite3.Connection) -> ResourcesUpdate:
            row = conn.execute("SELECT data FROM resources WHERE resources_id=?", (resources_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"resources {resources_id!r} do not exist in this store")
            return ResourcesUpdate.model_validate_json(row[0])

        return await self._run(op)

