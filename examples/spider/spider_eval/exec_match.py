"""Spider execution accuracy: do the predicted and gold queries return the same result?

Both queries run against ``database/<db_id>/<db_id>.sqlite``. Results are compared as multisets of rows
(bag semantics, duplicates counted); row order is compared only when the gold query has a top-level
ORDER BY. Columns may come in any order: a prediction matches if some permutation of its columns gives the
gold result, as in the test-suite evaluation of Zhong et al. (2020). Two empty results match.

Safety: the database is opened read-only (``file:...?mode=ro`` plus ``PRAGMA query_only=ON``), an
authorizer allows only reads (no ATTACH, PRAGMA, DDL or DML), a single statement is executed, each query
has a wall-clock deadline enforced through SQLite's progress handler, and at most ``max_rows`` rows are read.
A prediction that errors, times out or returns too many rows scores 0 with a reason; a gold query that
fails raises ``GoldQueryError``.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import sqlglot
from sqlglot import exp

__all__ = [
    "DEFAULT_MAX_ROWS",
    "DEFAULT_TIMEOUT_S",
    "ExecMatchResult",
    "GoldQueryError",
    "QueryError",
    "connect_readonly",
    "exec_match",
    "gold_is_ordered",
    "results_match",
    "run_query",
]

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_ROWS = 100_000
_MAX_PERMUTATIONS = 10_000

_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}
_ALLOWED_ACTIONS.add(getattr(sqlite3, "SQLITE_RECURSIVE", 33))
_DENIED_FUNCTIONS = {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}

Row = tuple[object, ...]


class QueryError(RuntimeError):
    """A query failed: syntax or runtime error, time limit, row limit, or a denied (writing) operation."""


class GoldQueryError(RuntimeError):
    """The gold query failed; the gold file or the database must be fixed."""


@dataclass
class ExecMatchResult:
    score: int
    reason: str | None = None


def _authorizer(action: int, arg1: str | None, arg2: str | None, db_name: str | None, source: str | None) -> int:
    if action not in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def connect_readonly(db_path: str | Path) -> sqlite3.Connection:
    """Open a SQLite database so that no statement can change it (or attach / create other files)."""
    path = Path(db_path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"database file not found: {path}")
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA query_only = ON")
    conn.text_factory = lambda raw: raw.decode("utf-8", errors="replace")
    conn.set_authorizer(_authorizer)
    return conn


def run_query(
    conn: sqlite3.Connection,
    sql: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> list[Row]:
    """Execute one statement with a deadline and a row cap; raise ``QueryError`` on any failure."""
    deadline = time.monotonic() + timeout_s
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
    try:
        cursor = conn.execute(sql)
        rows: list[Row] = []
        while True:
            batch = cursor.fetchmany(1000)
            if not batch:
                break
            rows.extend(tuple(row) for row in batch)
            if len(rows) > max_rows:
                raise QueryError(f"result has more than {max_rows} rows")
        return rows
    except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError) as error:
        if time.monotonic() > deadline:
            raise QueryError(f"timed out after {timeout_s:g} s") from error
        raise QueryError(f"{type(error).__name__}: {error}") from error
    finally:
        conn.set_progress_handler(None, 0)
        if conn.in_transaction:
            conn.rollback()


def gold_is_ordered(gold_sql: str) -> bool:
    """Whether the gold query's outermost statement has an ORDER BY (so row order must be compared)."""
    try:
        tree = sqlglot.parse_one(gold_sql, read="sqlite")
    except sqlglot.errors.SqlglotError:
        return "order by" in " ".join(gold_sql.lower().split())
    while isinstance(tree, exp.Subquery):
        tree = tree.this
    return tree is not None and tree.args.get("order") is not None


def _column_candidates(gold: Sequence[Row], pred: Sequence[Row], width: int) -> list[list[int]]:
    gold_cols = [Counter(row[j] for row in gold) for j in range(width)]
    pred_cols = [Counter(row[i] for row in pred) for i in range(width)]
    return [[i for i in range(width) if pred_cols[i] == gold_cols[j]] for j in range(width)]


def results_match(gold: Sequence[Row], pred: Sequence[Row], ordered: bool) -> bool:
    """Bag (or list, if ``ordered``) equality of two results, up to a permutation of the predicted columns."""
    if len(gold) != len(pred):
        return False
    if not gold:
        return True
    width = len(gold[0])
    if any(len(row) != width for row in pred):
        return False
    gold_bag = None if ordered else Counter(gold)
    candidates = _column_candidates(gold, pred, width)
    for count, perm in enumerate(itertools.product(*candidates)):
        if count >= _MAX_PERMUTATIONS:
            break
        if len(set(perm)) != width:
            continue
        permuted = [tuple(row[i] for i in perm) for row in pred]
        if (permuted == list(gold)) if ordered else (Counter(permuted) == gold_bag):
            return True
    return False


def exec_match(
    db_path: str | Path,
    pred_sql: str,
    gold_sql: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_rows: int = DEFAULT_MAX_ROWS,
    gold_rows: list[Row] | None = None,
) -> ExecMatchResult:
    """Execution match of one prediction. ``gold_rows`` may be given to reuse an earlier gold run."""
    conn = connect_readonly(db_path)
    try:
        if gold_rows is None:
            try:
                gold_rows = run_query(conn, gold_sql, timeout_s, max_rows)
            except QueryError as error:
                raise GoldQueryError(f"gold query failed on {db_path}: {error}\n  query: {gold_sql}") from error
        if not pred_sql.strip():
            return ExecMatchResult(0, "empty prediction")
        try:
            pred_rows = run_query(conn, pred_sql, timeout_s, max_rows)
        except QueryError as error:
            return ExecMatchResult(0, f"prediction failed: {error}")
    finally:
        conn.close()
    if results_match(gold_rows, pred_rows, gold_is_ordered(gold_sql)):
        return ExecMatchResult(1)
    return ExecMatchResult(0, f"different result ({len(pred_rows)} rows vs {len(gold_rows)} gold rows)")
