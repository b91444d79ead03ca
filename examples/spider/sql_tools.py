"""The SQL agent's database side: a private read-only copy of each database, safe query execution, schema text.

Where this sits: runner → SQL agent (examples/spider/sql_agent.py) → **these helpers** → SQLite. Every SQL string the
model writes runs here, so this is the safety boundary:

- `database_copy(path)` copies `<db_id>.sqlite` once per process into a private temp folder (read-only file mode) and
  returns the copy; the agent never opens the original file, which therefore stays byte-identical.
- `execute_sql(copy, sql)` opens the copy with `spider_eval.connect_readonly` (URI `mode=ro`, `PRAGMA query_only=ON`,
  an authorizer that allows only SELECT / READ / plain functions: no ATTACH, PRAGMA, DDL or DML, no
  `load_extension`), runs ONE statement with a wall-clock limit (`spider_eval.run_query`), and returns an
  `Execution` whose `text` is what the model sees: the rows, or `Error: ...` naming why (denied write, time-out, ...).
- `table_info(copy)` is the schema prompt: each table's CREATE statement plus a few sample rows, truncated.
- `extract_sql(reply)` pulls the query out of a model reply (```sql blocks first, then a bare SELECT/WITH).

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
from dataclasses import dataclass
from pathlib import Path

from examples.spider.spider_eval.exec_match import QueryError, connect_readonly, run_query

__all__ = [
    "DEFAULT_QUERY_TIMEOUT_S",
    "DEFAULT_TRUNCATE",
    "Execution",
    "database_copy",
    "execute_sql",
    "extract_sql",
    "table_info",
    "truncate",
]

DEFAULT_QUERY_TIMEOUT_S = 5.0
DEFAULT_TRUNCATE = 2048
_MAX_ROWS = 10_000
_READ_ONLY_HINT = ("the database is read-only: only one SELECT (or WITH ... SELECT) statement may run; writes, "
                   "ATTACH and PRAGMA are not allowed")

_DENIED_MARKERS = ("not authorized", "authorization denied", "readonly", "read-only", "query_only")

_COPY_LOCK = threading.Lock()
_COPIES: dict[tuple[str, int, int], Path] = {}
_COPY_DIR: Path | None = None


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


def execute_sql(db_path: str | Path, sql: str, timeout_s: float = DEFAULT_QUERY_TIMEOUT_S,
                limit: int = DEFAULT_TRUNCATE) -> Execution:
    """Run one model-written statement read-only on `db_path` (give it a `database_copy`); never raises for bad SQL.

    The returned `text` is the result rows (`[(...), ...]`, at most `limit` characters) or `Error: <why>`.
    """
    if not sql.strip():
        error = "no SQL query found in the reply; write one SQLite query in a ```sql code block"
        return Execution(f"Error: {error}", error=error)
    conn = connect_readonly(db_path)
    try:
        rows = run_query(conn, sql, timeout_s=timeout_s, max_rows=_MAX_ROWS)
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


def extract_sql(reply: str) -> str:
    """The SQL query in a model reply: the last non-empty ```sql block, else text from the first SELECT/WITH.

    Only the first statement is kept (up to the first `;`), whitespace is collapsed; "" when there is none.
    """
    blocks = [b.strip() for b in _FENCED.findall(reply or "") if b.strip()]
    candidate = blocks[-1] if blocks else ""
    if not candidate:
        match = _BARE.search(reply or "")
        candidate = match.group(0).split("\n\n", 1)[0] if match else ""
    candidate = candidate.split(";", 1)[0]
    return " ".join(candidate.split())
