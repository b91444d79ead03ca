"""The SQL agent's database side: a private read-only copy of each database, safe query execution, schema text.

Where this sits: runner → SQL agent (examples/spider/sql_agent.py) → **these helpers** → SQLite. Every SQL string the
model writes runs here, so this is the safety boundary:

- `database_copy(path)` copies `<db_id>.sqlite` once per process into a private temp folder (read-only file mode) and
  returns the copy; the agent never opens the original file, which therefore stays byte-identical.
- `execute_sql(copy, sql)` opens the copy with `spider_eval.connect_readonly` (URI `mode=ro`, `PRAGMA query_only=ON`,
  an authorizer that allows only SELECT / READ / plain functions: no ATTACH, PRAGMA, DDL or DML, no
  `load_extension`), runs ONE statement with a wall-clock limit, and returns an `Execution` whose `text` is what the
  model sees: the rows, or `Error: ...` naming why (denied write, time-out, too much memory, ...). It never raises
  for anything the query does, `MemoryError` included.
- `table_info(copy)` is the schema prompt: each table's CREATE statement plus a few sample rows, truncated.
- `extract_sql(reply)` pulls the query out of a model reply (```sql blocks first, then a bare SELECT/WITH) and keeps
  its first statement: the first `;` outside string literals, quoted names and comments ends it.

Memory bounds (a query like `SELECT zeroblob(900000000), zeroblob(900000000)` once grew a runner by ~3 GB):
- `MAX_VALUE_BYTES` (1 MB): SQLite's length limit on the agent's connection (`SQLITE_LIMIT_LENGTH`): no string, blob
  or row can be built larger, so `zeroblob(900000000)` or a 100 MB `group_concat` fails at once inside SQLite.
- `SQLITE_HEAP_LIMIT_BYTES` (128 MiB): SQLite's hard heap limit (`PRAGMA hard_heap_limit`), for what one value cannot
  show, e.g. a sort of thousands of 500 kB blobs. SQLite has one heap limit per *process*, not per connection: it is
  lowered to this value on the first `execute_sql` (never raised; a lower limit set by someone else is kept), and it
  then bounds every SQLite connection of the process. Past it SQLite fails the allocation; the agent gets an error.
- `MAX_RESULT_BYTES` (4 MB) and 10,000 rows: the rows fetched into Python; the fetch stops as soon as either is
  passed (the model only sees `limit` characters of them anyway).

    copy = database_copy("examples/spider/data/mini_spider/database/college/college.sqlite")
    print(execute_sql(copy, "SELECT count(*) FROM student").text)      # [(12,)]
    print(execute_sql(copy, "DROP TABLE student").text)                # Error: ... not authorized ... read-only ...
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from examples.spider.spider_eval.exec_match import QueryError, connect_readonly, run_query

__all__ = [
    "DEFAULT_QUERY_TIMEOUT_S",
    "DEFAULT_TRUNCATE",
    "MAX_RESULT_BYTES",
    "MAX_VALUE_BYTES",
    "SQLITE_HEAP_LIMIT_BYTES",
    "Execution",
    "database_copy",
    "execute_sql",
    "extract_sql",
    "table_info",
    "truncate",
]

DEFAULT_QUERY_TIMEOUT_S = 5.0
DEFAULT_TRUNCATE = 2048
MAX_VALUE_BYTES = 1_000_000
MAX_RESULT_BYTES = 4_000_000
SQLITE_HEAP_LIMIT_BYTES = 128 * 2**20
_MAX_ROWS = 10_000
_VALUE_OVERHEAD = 16  # bytes counted per value on top of its text/blob length (numbers and NULL count this only)
_SHRINK_HINT = "select fewer or smaller values (aggregate, pick columns, add a LIMIT)"
_READ_ONLY_HINT = ("the database is read-only: only one SELECT (or WITH ... SELECT) statement may run; writes, "
                   "ATTACH and PRAGMA are not allowed")

_DENIED_MARKERS = ("not authorized", "authorization denied", "readonly", "read-only", "query_only")

_COPY_LOCK = threading.Lock()
_COPIES: dict[tuple[str, int, int], Path] = {}
_COPY_DIR: Path | None = None
_HEAP_LIMIT_LOCK = threading.Lock()
_HEAP_LIMIT_SET = False


@dataclass
class Execution:
    """Outcome of one agent query: `text` is what the model sees; `error` is None when the query ran."""

    text: str
    rows: list[tuple[object, ...]] | None = None
    error: str | None = None
    timed_out: bool = False


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters (a marker says how much was cut); `limit <= 0` means no limit."""
    if limit <= 0 or len(text) <= limit:
        return text
    return text[:limit] + f"\n... (truncated, {len(text) - limit} more characters)"


def _copy_dir() -> Path:
    global _COPY_DIR
    if _COPY_DIR is None:
        _COPY_DIR = Path(tempfile.mkdtemp(prefix=f"agl-spider-db-{os.getpid()}-"))
        atexit.register(shutil.rmtree, _COPY_DIR, True)
    return _COPY_DIR


def database_copy(db_path: str | Path) -> Path:
    """A private read-only copy of `db_path` for this process (made once per file version, then reused)."""
    source = Path(db_path).resolve()
    if not source.is_file():
        raise FileNotFoundError(f"database file not found: {source}. Spider keeps each database at "
                                "<db_dir>/<db_id>/<db_id>.sqlite; check the task's db_dir and db_id")
    info = source.stat()
    key = (str(source), info.st_size, info.st_mtime_ns)
    with _COPY_LOCK:
        copy = _COPIES.get(key)
        if copy is not None and copy.is_file():
            return copy
        folder = Path(tempfile.mkdtemp(prefix=f"{source.stem}-", dir=_copy_dir()))
        copy = folder / source.name
        partial = folder / (source.name + ".partial")
        shutil.copyfile(source, partial)
        partial.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        partial.rename(copy)
        _COPIES[key] = copy
        return copy


def _lower_sqlite_heap_limit() -> None:
    """Lower SQLite's process-wide hard heap limit to `SQLITE_HEAP_LIMIT_BYTES` (once; a lower limit is kept)."""
    global _HEAP_LIMIT_SET
    if _HEAP_LIMIT_SET:
        return
    with _HEAP_LIMIT_LOCK:
        if _HEAP_LIMIT_SET:
            return
        # The agent's connection refuses PRAGMA (authorizer), and the limit is global anyway: set it from a private
        # in-memory connection. The pragma only ever lowers the limit (0 = none yet).
        conn = sqlite3.connect(":memory:")
        try:
            current = conn.execute("PRAGMA hard_heap_limit").fetchone()
            if current is not None and (current[0] == 0 or current[0] > SQLITE_HEAP_LIMIT_BYTES):
                conn.execute(f"PRAGMA hard_heap_limit = {int(SQLITE_HEAP_LIMIT_BYTES)}").fetchall()
        except sqlite3.Error:  # pragma: no cover - SQLite < 3.31 has no hard heap limit; the other bounds still hold
            pass
        finally:
            conn.close()
        _HEAP_LIMIT_SET = True


def _value_bytes(value: object) -> int:
    if isinstance(value, str | bytes):
        return len(value) + _VALUE_OVERHEAD
    return _VALUE_OVERHEAD


def _run_bounded(conn: sqlite3.Connection, sql: str, timeout_s: float) -> list[tuple[object, ...]]:
    """Run one statement with a deadline, a row cap and a byte cap; raise `QueryError` (never MemoryError)."""
    deadline = time.monotonic() + timeout_s
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
    try:
        cursor = conn.execute(sql)
        rows: list[tuple[object, ...]] = []
        size = 0
        while True:
            batch = cursor.fetchmany(100)
            if not batch:
                break
            for row in batch:
                size += sum(_value_bytes(value) for value in row)
            rows.extend(tuple(row) for row in batch)
            if len(rows) > _MAX_ROWS:
                raise QueryError(f"result has more than {_MAX_ROWS} rows")
            if size > MAX_RESULT_BYTES:
                raise QueryError(f"result is larger than the tool's cap: more than {MAX_RESULT_BYTES:,} bytes after "
                                 f"{len(rows)} rows; {_SHRINK_HINT}")
        return rows
    except sqlite3.DataError as error:
        if "too big" not in str(error):
            raise QueryError(f"{type(error).__name__}: {error}") from error
        raise QueryError(f"{type(error).__name__}: {error}: a value or row would exceed {MAX_VALUE_BYTES:,} bytes "
                         f"(the length limit of this connection); {_SHRINK_HINT}") from error
    except MemoryError:  # SQLite's heap limit (SQLITE_NOMEM), or Python's own allocations
        raise QueryError(f"out of memory: the query needs more than the {SQLITE_HEAP_LIMIT_BYTES // 2**20} MiB "
                         f"SQLite may use in this process; {_SHRINK_HINT}") from None
    except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError) as error:
        if time.monotonic() > deadline:
            raise QueryError(f"timed out after {timeout_s:g} s") from error
        raise QueryError(f"{type(error).__name__}: {error}") from error
    finally:
        conn.set_progress_handler(None, 0)
        if conn.in_transaction:
            conn.rollback()


def execute_sql(db_path: str | Path, sql: str, timeout_s: float = DEFAULT_QUERY_TIMEOUT_S,
                limit: int = DEFAULT_TRUNCATE) -> Execution:
    """Run one model-written statement read-only on `db_path` (give it a `database_copy`); never raises for bad SQL.

    The returned `text` is the result rows (`[(...), ...]`, at most `limit` characters) or `Error: <why>`. Memory is
    bounded as the module docstring says: a query that would pass a bound is an error, not a crash.
    """
    if not sql.strip():
        error = "no SQL query found in the reply; write one SQLite query in a ```sql code block"
        return Execution(f"Error: {error}", error=error)
    _lower_sqlite_heap_limit()
    conn = connect_readonly(db_path)
    try:
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        rows = _run_bounded(conn, sql, timeout_s)
    except QueryError as exc:
        error = str(exc)
        timed_out = error.startswith("timed out")
        if any(marker in error.lower() for marker in _DENIED_MARKERS):
            error = f"{error} ({_READ_ONLY_HINT})"
        elif "one statement at a time" in error:
            error = f"{error} (send a single SELECT statement)"
        elif timed_out:
            error = f"query {error}; simplify it (avoid cross joins and unbounded recursion)"
        return Execution(f"Error: {error}", error=error, timed_out=timed_out)
    finally:
        conn.close()
    text = "(no rows)" if not rows else truncate(str(rows), limit)
    return Execution(text, rows=rows)


def table_info(db_path: str | Path, sample_rows: int = 3, limit: int = DEFAULT_TRUNCATE) -> str:
    """The schema as the model sees it: CREATE TABLE statements, each followed by `sample_rows` example rows."""
    conn = connect_readonly(db_path)
    try:
        tables = run_query(conn, "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL "
                                 "AND name NOT LIKE 'sqlite_%' ORDER BY rowid")
        parts = []
        for name, create in tables:
            part = str(create).strip()
            if sample_rows > 0:
                try:
                    cursor = conn.execute(f'SELECT * FROM "{str(name).replace(chr(34), chr(34) * 2)}" '
                                          f"LIMIT {int(sample_rows)}")
                    columns = "\t".join(d[0] for d in cursor.description or ())
                    rows = ["\t".join(str(v) for v in row) for row in cursor.fetchall()]
                except sqlite3.Error:
                    rows = []
                if rows:
                    part += f"\n/*\n{len(rows)} rows from {name} table:\n{columns}\n" + "\n".join(rows) + "\n*/"
            parts.append(part)
    finally:
        conn.close()
    return truncate("\n\n".join(parts), limit)


_FENCED = re.compile(r"```[ \t]*(?:sql|sqlite)?[ \t]*\n?(.*?)(?:```|$)", re.DOTALL | re.IGNORECASE)
_BARE = re.compile(r"\b(SELECT|WITH)\b.*", re.DOTALL | re.IGNORECASE)
_QUOTES = {"'": "'", '"': '"', "`": "`", "[": "]"}


def _literal_end(text: str, start: int) -> int:
    """Index just past the literal or quoted name opening at `start` (`''` escapes a quote; unclosed: the end)."""
    close = _QUOTES[text[start]]
    end = start + 1
    while True:
        end = text.find(close, end)
        if end < 0:
            return len(text)
        if close != "]" and text.startswith(close * 2, end):
            end += 2
            continue
        return end + 1


def _first_statement(text: str, stop_at_blank_line: bool = False) -> str:
    """`text` up to its first `;` outside literals, quoted names and comments (or a blank line, if asked).

    Whitespace runs outside literals become one space and comments are dropped (a `--` comment would otherwise
    swallow the rest once lines are joined); literals and quoted names are kept exactly. An unclosed literal runs to
    the end of the text.
    """
    out: list[str] = []
    gap = False  # whitespace or a comment since the last kept character
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == ";" or (stop_at_blank_line and text.startswith("\n\n", i)):
            break
        if char.isspace() or text.startswith(("--", "/*"), i):
            if char.isspace():
                i += 1
            elif char == "-":
                i = n if (newline := text.find("\n", i)) < 0 else newline
            else:
                i = n if (close := text.find("*/", i + 2)) < 0 else close + 2
            gap = True
            continue
        if gap and out:
            out.append(" ")
        gap = False
        end = _literal_end(text, i) if char in _QUOTES else i + 1
        out.append(text[i:end])
        i = end
    return "".join(out)


def extract_sql(reply: str) -> str:
    """The SQL query in a model reply: the last non-empty ```sql block, else text from the first SELECT/WITH.

    Only the first statement is kept: up to the first `;` outside string literals, quoted names and comments (for a
    bare query also up to the first blank line). Whitespace outside literals is collapsed and comments are dropped;
    "" when there is no query.
    """
    blocks = [b.strip() for b in _FENCED.findall(reply or "") if b.strip()]
    if blocks:
        return _first_statement(blocks[-1])
    match = _BARE.search(reply or "")
    return _first_statement(match.group(0), stop_at_blank_line=True) if match else ""
