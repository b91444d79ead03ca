"""Memory bounds and statement splitting of the SQL agent's tool (examples/spider/sql_tools.py).

A model-written query must never take the runner down: huge values (`zeroblob`, `randomblob`, `group_concat`), huge
results and huge sorts come back to the agent as an `Error: ...` text, the process stays small (peak RSS is measured
in a fresh subprocess), and the database file stays byte-identical. `extract_sql` cuts the reply at the first `;`
that is outside string literals, quoted names and comments.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from examples.spider.data.loader import bundled_root
from examples.spider.sql_tools import (
    MAX_RESULT_BYTES,
    MAX_VALUE_BYTES,
    SQLITE_HEAP_LIMIT_BYTES,
    database_copy,
    execute_sql,
    extract_sql,
)

DB = bundled_root() / "database" / "concert_singer" / "concert_singer.sqlite"
REPO = Path(__file__).resolve().parents[2]
MIB = 2**20
RSS_BUDGET_MIB = 400  # far below the 2.6-2.9 GB these queries reached before the limits (and below 1 GB)

_BLOBS = "WITH RECURSIVE r(i, b) AS (SELECT 1, randomblob({size}) UNION ALL SELECT i + 1, randomblob({size}) FROM r " \
         "WHERE i < {count}) "
MEMORY_ATTACKS = {
    # two values of 900 MB each: SQLite builds them before the first row comes back
    "zeroblob": "SELECT zeroblob(900000000), zeroblob(900000000)",
    # a recursive CTE streaming 3,000 rows of 900 kB (2.7 GB): under the 10,000-row cap, so only a byte cap stops it
    "randomblob_rows": _BLOBS.format(size=900_000, count=3000) + "SELECT b FROM r",
    # 2,000 blobs of 500 kB concatenated into one 1 GB value inside SQLite
    "randomblob_concat": _BLOBS.format(size=500_000, count=2000) + "SELECT length(group_concat(b)) FROM r",
    # 2,000 blobs of 500 kB sorted: SQLite's sorter holds them in its own heap
    "randomblob_sort": _BLOBS.format(size=500_000, count=2000) + "SELECT length(b) FROM r ORDER BY b",
}

# Run in a fresh interpreter so its peak RSS (VmHWM) is this query's alone. The address-space cap only keeps a broken
# build from taking the machine down (it would fail here with MemoryError instead of using gigabytes). The time limit
# is generous so that only the memory bounds can stop these queries, even on a loaded machine.
_PROBE = textwrap.dedent("""
    import json, resource, sys

    def hwm_kib():  # this process's own peak RSS (ru_maxrss would start at the parent's, inherited through fork)
        return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1])

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    from examples.spider.sql_tools import database_copy, execute_sql
    copy = database_copy(sys.argv[1])
    execute_sql(copy, "SELECT 1")
    before = hwm_kib()
    outcome = execute_sql(copy, sys.argv[2], timeout_s=90)
    peak = hwm_kib()
    after = execute_sql(copy, "SELECT count(*) FROM singer")
    print(json.dumps({"text": outcome.text, "error": outcome.error, "rows": outcome.rows is not None,
                      "before_kib": before, "peak_kib": peak, "after": after.text}))
""")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _probe(sql: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _PROBE, str(DB), sql], cwd=REPO, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, f"the tool raised instead of answering the agent:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(MEMORY_ATTACKS))
def test_memory_attacks_are_an_error_for_the_agent_and_the_process_stays_small(name: str) -> None:
    before = _digest(DB)
    result = _probe(MEMORY_ATTACKS[name])
    peak_mib = result["peak_kib"] / 1024
    print(f"{name}: peak RSS {peak_mib:.0f} MiB (before the query {result['before_kib'] / 1024:.0f} MiB)")
    assert result["error"] and result["text"].startswith("Error: ") and not result["rows"], result
    assert "LIMIT" in result["text"], result["text"]  # the model is told how to fix the query
    assert peak_mib < RSS_BUDGET_MIB, f"{name}: peak RSS {peak_mib:.0f} MiB"
    assert result["after"] == "[(12,)]"  # the tool still answers normally afterwards
    assert _digest(DB) == before


def test_value_length_limit_names_the_limit_and_keeps_normal_values() -> None:
    copy = database_copy(DB)
    before = _digest(copy)
    outcome = execute_sql(copy, f"SELECT length(zeroblob({MAX_VALUE_BYTES + 1}))")
    assert outcome.error is not None and outcome.rows is None
    assert f"{MAX_VALUE_BYTES:,} bytes" in outcome.text and "string or blob too big" in outcome.text
    assert execute_sql(copy, f"SELECT length(zeroblob({MAX_VALUE_BYTES}))").text == f"[({MAX_VALUE_BYTES},)]"
    assert _digest(copy) == before


def test_result_byte_cap_names_the_cap() -> None:
    rows = MAX_RESULT_BYTES // 500_000 + 2
    outcome = execute_sql(database_copy(DB), _BLOBS.format(size=500_000, count=rows) + "SELECT b FROM r")
    assert outcome.error is not None and outcome.rows is None
    assert f"more than {MAX_RESULT_BYTES:,} bytes" in outcome.text and "LIMIT" in outcome.text
    small = execute_sql(database_copy(DB), _BLOBS.format(size=1000, count=50) + "SELECT b FROM r")
    assert small.error is None and small.rows is not None and len(small.rows) == 50


def test_heap_limit_is_set_for_the_process() -> None:
    import sqlite3

    execute_sql(database_copy(DB), "SELECT 1")
    limit = sqlite3.connect(":memory:").execute("PRAGMA hard_heap_limit").fetchone()[0]
    assert 0 < limit <= SQLITE_HEAP_LIMIT_BYTES


def test_a_semicolon_inside_a_literal_does_not_smuggle_a_second_statement() -> None:
    copy = database_copy(DB)
    before = _digest(copy)
    outcome = execute_sql(copy, "SELECT ';' ; DROP TABLE singer")
    assert outcome.error is not None and "one statement at a time" in outcome.text
    assert _digest(copy) == before
    assert execute_sql(copy, extract_sql("SELECT ';' ; DROP TABLE singer")).text == "[(';',)]"


@pytest.mark.parametrize(("reply", "sql"), [
    ("SELECT ';' ; DROP", "SELECT ';'"),
    ("```sql\nSELECT name FROM singer WHERE name = 'a;b'; DROP TABLE singer\n```",
     "SELECT name FROM singer WHERE name = 'a;b'"),
    ("SELECT 'it''s; fine' FROM t; DELETE FROM t", "SELECT 'it''s; fine' FROM t"),
    ('SELECT "odd;name" FROM t; x', 'SELECT "odd;name" FROM t'),
    ("SELECT [a;b], `c;d` FROM t; x", "SELECT [a;b], `c;d` FROM t"),
    ("```sql\nSELECT a -- the name; not the id\nFROM t;\n```", "SELECT a FROM t"),
    ("SELECT a /* ; */ FROM t", "SELECT a FROM t"),
    ("```sql\nSELECT 'two  spaces'\n  FROM t\n```", "SELECT 'two  spaces' FROM t"),
    ("SELECT 'never closed; DROP", "SELECT 'never closed; DROP"),
    ("The query is SELECT 'a\n\nb' FROM t\n\nIt returns a.", "SELECT 'a\n\nb' FROM t"),
])
def test_extract_sql_respects_literals_and_comments(reply: str, sql: str) -> None:
    assert extract_sql(reply) == sql
