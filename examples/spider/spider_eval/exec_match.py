"""Spider execution accuracy, scored as the official test-suite evaluation (``exec_eval.py``) scores it, read-only.

``exec_match(db_path, pred, gold)`` prepares both queries as the official code does (``> =`` / ``< =`` / ``! =``
joined; every ``DISTINCT`` token removed with sqlparse, inside aggregates too, unless ``keep_distinct``; only the first
statement kept, since sqlparse's first statement is what remains; ``YEAR(CURDATE())`` read as 2020), runs them on
every file with ``.sqlite`` in its name in the database's folder (the test-suite layout; Spider has one), and scores 1
when every result matches: both empty, or the same number of rows and columns and some column permutation that
makes the prediction equal to the gold result, as a multiset of rows, or as a list when ``order by`` appears anywhere
in the gold text (a subquery's included). Text is decoded from UTF-8 ignoring bad bytes, as there.

What is added for safety (the official code opens the database read-write with no working time limit): the file is
opened read-only (``mode=ro``, ``PRAGMA query_only``), an authorizer allows only reads (no ATTACH, PRAGMA, DDL, DML,
``load_extension``), every query has a wall-clock limit and a row cap. A prediction that errors, writes, times out or
returns more rows than the cap scores 0 with a reason (more rows than a gold result under the cap cannot match it
anyway); a gold query that fails raises ``GoldQueryError`` (the official code stops with an assertion there).

    exec_match("examples/spider/data/mini_spider/database/store/store.sqlite",
               "SELECT count(*) FROM customer", "SELECT count(DISTINCT customer_id) FROM customer").score   # 1
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

__all__ = [
    "DEFAULT_MAX_ROWS",
    "DEFAULT_TIMEOUT_S",
    "ExecMatchResult",
    "GoldQueryError",
    "QueryError",
    "connect_readonly",
    "exec_match",
    "official_exec_text",
    "result_eq",
    "run_query",
    "suite_paths",
]

DEFAULT_TIMEOUT_S = 60.0  # the official TIMEOUT constant (which it never enforces)
DEFAULT_MAX_ROWS = 1_000_000

_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}
_ALLOWED_ACTIONS.add(getattr(sqlite3, "SQLITE_RECURSIVE", 33))
_DENIED_FUNCTIONS = {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}
_CUR_YEAR = re.compile(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", flags=re.IGNORECASE)

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


def connect_readonly(db_path: str | Path, decode_errors: str = "replace") -> sqlite3.Connection:
    """Open a SQLite database so that no statement can change it (or attach / create other files)."""
    path = Path(db_path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"database file not found: {path}")
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA query_only = ON")
    conn.text_factory = lambda raw: raw.decode("utf-8", errors=decode_errors)
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
    except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError, MemoryError) as error:
        if time.monotonic() > deadline:
            raise QueryError(f"timed out after {timeout_s:g} s") from error
        raise QueryError(f"{type(error).__name__}: {error}") from error
    finally:
        conn.set_progress_handler(None, 0)
        if conn.in_transaction:
            conn.rollback()


def official_exec_text(sql: str, keep_distinct: bool = False) -> str:
    """The query text the official evaluation executes (operators joined, DISTINCT removed, current year)."""
    import sqlparse  # imported here: only scoring needs it, not the agent's query tool

    text = sql.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")
    if not keep_distinct:
        text = "".join(t.value for t in sqlparse.parse(text)[0].flatten() if t.value.lower() != "distinct")
    return _CUR_YEAR.sub("2020", text)


def suite_paths(db_path: str | Path) -> list[Path]:
    """Every database the official code runs a pair on: files with ``.sqlite`` in their name next to ``db_path``."""
    folder = Path(db_path).parent
    return sorted(p for p in folder.iterdir() if ".sqlite" in p.name and p.is_file()
                  and not p.name.endswith(("-journal", "-wal", "-shm")))


def _unorder_row(row: Row) -> Row:
    return tuple(sorted(row, key=lambda value: str(value) + str(type(value))))


def _permutations(gold: Sequence[Row], pred: Sequence[Row], width: int, ordered: bool) -> Iterator[tuple[int, ...]]:
    """Column permutations that can make ``pred`` equal ``gold``; of identical predicted columns only one order."""
    gold_cols = [[row[j] for row in gold] for j in range(width)]
    pred_cols = [[row[i] for row in pred] for i in range(width)]
    same = (lambda a, b: a == b) if ordered else (lambda a, b: Counter(a) == Counter(b))
    candidates = [[i for i in range(width) if same(pred_cols[i], gold_cols[j])] for j in range(width)]

    def extend(prefix: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
        if len(prefix) == width:
            yield prefix
            return
        for i in candidates[len(prefix)]:
            if i in prefix or any(k < i and k not in prefix and pred_cols[k] == pred_cols[i] for k in range(width)):
                continue
            yield from extend((*prefix, i))

    return extend(())


def result_eq(gold: Sequence[Row], pred: Sequence[Row], order_matters: bool) -> bool:
    """The official denotation comparison (``result_eq``), without its random sampling (which only prunes)."""
    if not gold and not pred:
        return True
    if len(gold) != len(pred):
        return False
    width = len(gold[0])
    if len(pred[0]) != width:
        return False
    gold_unordered, pred_unordered = [_unorder_row(r) for r in gold], [_unorder_row(r) for r in pred]
    if (gold_unordered != pred_unordered) if order_matters else (set(gold_unordered) != set(pred_unordered)):
        return False
    gold_list, gold_set, gold_bag = list(gold), set(gold), Counter(gold)
    for perm in _permutations(gold, pred, width, order_matters):
        permuted = list(pred) if width == 1 else [tuple(row[i] for i in perm) for row in pred]
        if order_matters and permuted == gold_list:
            return True
        if not order_matters and set(permuted) == gold_set and Counter(permuted) == gold_bag:
            return True
    return False


def exec_match(
    db_path: str | Path,
    pred_sql: str,
    gold_sql: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_rows: int = DEFAULT_MAX_ROWS,
    keep_distinct: bool = False,
) -> ExecMatchResult:
    """Execution match of one prediction, as the official ``eval_exec_match`` with default settings scores it."""
    if not Path(db_path).is_file():
        raise FileNotFoundError(f"database file not found: {db_path} (Spider keeps it at <db>/<db_id>/<db_id>.sqlite)")
    if not pred_sql.strip():
        return ExecMatchResult(0, "empty prediction")
    try:
        gold = official_exec_text(gold_sql, keep_distinct)
    except Exception as error:  # noqa: BLE001 - sqlparse failing on the gold text
        raise GoldQueryError(f"gold query cannot be tokenized by sqlparse ({error})\n  query: {gold_sql}") from error
    try:
        pred = official_exec_text(pred_sql, keep_distinct)
    except Exception as error:  # noqa: BLE001 - the official code crashes here; an evaluator must not
        return ExecMatchResult(0, f"prediction cannot be tokenized by sqlparse ({type(error).__name__}: {error})")
    order_matters = "order by" in gold.lower()
    for path in suite_paths(db_path):
        conn = connect_readonly(path, decode_errors="ignore")
        try:
            try:
                gold_rows = run_query(conn, gold, timeout_s, max_rows)
            except QueryError as error:
                raise GoldQueryError(f"gold query failed on {path}: {error}\n  query: {gold_sql}") from error
            try:
                pred_rows = run_query(conn, pred, timeout_s, max_rows)
            except QueryError as error:
                return ExecMatchResult(0, f"prediction failed: {error}")
        finally:
            conn.close()
        if not result_eq(gold_rows, pred_rows, order_matters):
            return ExecMatchResult(0, f"different result ({len(pred_rows)} rows vs {len(gold_rows)} gold rows)"
                                      + (f" on {path.name}" if path.name != Path(db_path).name else ""))
    return ExecMatchResult(1)
