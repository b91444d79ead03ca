"""The SQL agent's safety boundary (examples/spider/sql_tools.py): model-written SQL runs on a private read-only copy;
writes, ATTACH, state-changing pragmas and extension loading fail with an error the model sees; queries have a time
limit; the original database file stays byte-identical."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from examples.spider.data.loader import bundled_root
from examples.spider.sql_tools import database_copy, execute_sql, extract_sql, table_info

DB = bundled_root() / "database" / "concert_singer" / "concert_singer.sqlite"

ATTACKS = {
    "delete": "DELETE FROM singer",
    "drop": "DROP TABLE singer",
    "insert": "INSERT INTO singer (Singer_ID, Name) VALUES (999, 'x')",
    "update": "UPDATE singer SET Age = 0",
    "create": "CREATE TABLE pwned (x INTEGER)",
    "attach": "ATTACH DATABASE '/tmp/agl_spider_attack.sqlite' AS other",
    "writable_schema": "PRAGMA writable_schema = ON",
    "query_only_off": "PRAGMA query_only = OFF",
    "journal_mode": "PRAGMA journal_mode = DELETE",
    "vacuum_into": "VACUUM INTO '/tmp/agl_spider_vacuum.sqlite'",
    "load_extension": "SELECT load_extension('/tmp/nothing.so')",
    "two_statements": "SELECT 1; DROP TABLE singer",
}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_writes_attach_and_pragmas_fail_with_a_visible_error(name: str) -> None:
    before = _digest(DB)
    copy = database_copy(DB)
    copy_before = _digest(copy)
    outcome = execute_sql(copy, ATTACKS[name])
    assert outcome.error is not None and outcome.rows is None
    assert outcome.text.startswith("Error: ") and outcome.error in outcome.text
    if name != "two_statements":
        assert "read-only" in outcome.text, outcome.text  # the model is told why
    assert _digest(DB) == before and _digest(copy) == copy_before
    assert not Path("/tmp/agl_spider_attack.sqlite").exists() and not Path("/tmp/agl_spider_vacuum.sqlite").exists()
    # the database still answers normally afterwards
    assert execute_sql(copy, "SELECT count(*) FROM singer").error is None


def test_the_copy_is_private_read_only_and_reused() -> None:
    copy = database_copy(DB)
    assert copy != DB.resolve() and copy.name == DB.name
    assert _digest(copy) == _digest(DB)
    assert not os.stat(copy).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert database_copy(DB) == copy  # one copy per process and file version


def test_missing_database_names_the_path_and_layout(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.sqlite.*<db_id>/<db_id>\.sqlite"):
        database_copy(tmp_path / "nope.sqlite")


def test_per_query_time_limit() -> None:
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    outcome = execute_sql(database_copy(DB), endless, timeout_s=0.3)
    assert outcome.timed_out and "timed out after 0.3 s" in outcome.text


def test_results_are_shown_and_truncated() -> None:
    copy = database_copy(DB)
    assert execute_sql(copy, "SELECT Name FROM singer WHERE Singer_ID = 1").text == "[('Quentin Okafor',)]"
    assert execute_sql(copy, "SELECT Name FROM singer WHERE 0").text == "(no rows)"
    long = execute_sql(copy, "SELECT * FROM singer, concert", limit=100)
    assert long.error is None and len(long.text) < 160 and "truncated" in long.text
    assert "no SQL query found" in execute_sql(copy, "  ").text


def test_table_info_has_create_statements_sample_rows_and_a_limit() -> None:
    copy = database_copy(DB)
    info = table_info(copy)
    assert "CREATE TABLE singer" in info and "3 rows from singer table:" in info
    assert len(table_info(copy, limit=200)) < 260 and "truncated" in table_info(copy, limit=200)


@pytest.mark.parametrize(("reply", "sql"), [
    ("```sql\nSELECT a\nFROM t;\n```", "SELECT a FROM t"),
    ("Here:\n```\nSELECT 1\n```\nthen ```sql SELECT 2 ```", "SELECT 2"),
    ("The answer is SELECT name FROM singer\n\nThis selects names.", "SELECT name FROM singer"),
    ("```sql\nSELECT x FROM y", "SELECT x FROM y"),
    ("I don't know.", ""),
])
def test_extract_sql(reply: str, sql: str) -> None:
    assert extract_sql(reply) == sql
