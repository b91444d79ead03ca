"""Execution match: the official comparison rules, test-suite folders, time limit and read-only enforcement."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from examples.spider.spider_eval import GoldQueryError, exec_match, result_eq
from examples.spider.spider_eval.exec_match import official_exec_text

MINI = Path(__file__).resolve().parents[2] / "examples" / "spider" / "data" / "mini_spider"
STORE_DB = MINI / "database" / "store" / "store.sqlite"


@pytest.fixture
def store_copy(tmp_path: Path) -> Path:
    target = tmp_path / "store" / "store.sqlite"
    target.parent.mkdir()
    shutil.copyfile(STORE_DB, target)
    return target


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_results_compared_as_official_result_eq() -> None:
    assert result_eq([(1,), (2,), (2,)], [(2,), (1,), (2,)], order_matters=False)
    assert not result_eq([(1,), (2,), (2,)], [(1,), (1,), (2,)], order_matters=False)  # duplicates count
    assert not result_eq([(1,), (2,)], [(2,), (1,)], order_matters=True)
    assert result_eq([(1, "a"), (2, "b")], [("a", 1), ("b", 2)], order_matters=True)  # column permutation
    assert result_eq([(1, 2, 3, 4, 5)], [(5, 4, 3, 2, 1)], order_matters=True)
    assert not result_eq([(1, 2)], [(1, 2, 3)], order_matters=False)
    assert result_eq([], [], order_matters=False) and not result_eq([(1,)], [], order_matters=False)
    # official quirk: rows are first compared with values sorted by str(value) + str(type), so 2 and 2.0 can differ
    assert not result_eq([(2, 2.5)], [(2.0, 2.5)], order_matters=True)
    assert result_eq([(2,)], [(2.0,)], order_matters=True)


def test_order_matters_when_order_by_appears_anywhere_in_gold() -> None:
    pred_desc = "SELECT name FROM product WHERE price > 50 ORDER BY price DESC"
    assert exec_match(STORE_DB, pred_desc, "SELECT name FROM product WHERE price > 50").score == 1
    assert exec_match(STORE_DB, pred_desc, "SELECT name FROM product WHERE price > 50 ORDER BY price").score == 0
    nested_order = ("SELECT name FROM product WHERE product_id IN (SELECT product_id FROM product ORDER BY price "
                    "LIMIT 1000) AND price > 50")
    assert exec_match(STORE_DB, pred_desc, nested_order).score == 0  # the official text test sees "order by"


def test_distinct_removed_before_execution_unless_kept() -> None:
    assert official_exec_text("SELECT count(DISTINCT city) FROM customer") == "SELECT count( city) FROM customer"
    gold, pred = "SELECT count(DISTINCT city) FROM customer", "SELECT count(city) FROM customer"
    assert exec_match(STORE_DB, pred, gold).score == 1
    assert exec_match(STORE_DB, pred, gold, keep_distinct=True).score == 0
    assert official_exec_text("SELECT a FROM t WHERE b > = 1 AND c < YEAR(CURDATE())") == \
        "SELECT a FROM t WHERE b >= 1 AND c < 2020"


def test_every_sqlite_file_of_a_test_suite_folder_must_agree(store_copy: Path) -> None:
    gold = "SELECT count(*) FROM customer"
    conn = sqlite3.connect(store_copy)
    constant = f"SELECT {conn.execute(gold).fetchone()[0]}"
    conn.close()
    assert exec_match(store_copy, constant, gold).score == 1
    variant = store_copy.parent / "store_variant.sqlite"
    shutil.copyfile(store_copy, variant)
    conn = sqlite3.connect(variant)
    conn.execute("DELETE FROM customer WHERE customer_id = (SELECT min(customer_id) FROM customer)")
    conn.commit()
    conn.close()
    result = exec_match(store_copy, constant, gold)
    assert result.score == 0 and result.reason and "store_variant.sqlite" in result.reason
    assert exec_match(store_copy, "SELECT count(*) FROM customer WHERE 1", gold).score == 1


def test_prediction_errors_and_empty_predictions_score_zero_with_reason() -> None:
    result = exec_match(STORE_DB, "SELECT nope FROM product", "SELECT name FROM product")
    assert result.score == 0 and result.reason and "no such column" in result.reason
    result = exec_match(STORE_DB, "   ", "SELECT name FROM product")
    assert result.score == 0 and result.reason == "empty prediction"


def test_timeout_scores_zero() -> None:
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    result = exec_match(STORE_DB, endless, "SELECT count(*) FROM product", timeout_s=0.3)
    assert result.score == 0 and result.reason and "timed out" in result.reason


def test_gold_error_names_the_query_and_missing_database_is_clear(tmp_path: Path) -> None:
    with pytest.raises(GoldQueryError, match="SELECT nope FROM product"):
        exec_match(STORE_DB, "SELECT name FROM product", "SELECT nope FROM product")
    with pytest.raises(FileNotFoundError, match="database file not found"):
        exec_match(tmp_path / "x" / "x.sqlite", "SELECT 1", "SELECT 1")


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM customer",
        "DROP TABLE customer",
        "UPDATE product SET price = 0",
        "INSERT INTO customer VALUES (99, 'x', 'y', 'z', 2020)",
        "CREATE TABLE evil (a)",
        "ATTACH DATABASE '{dir}/evil.db' AS evil",
        "PRAGMA writable_schema=1",
        "PRAGMA query_only=OFF",
        "VACUUM INTO '{dir}/copy.db'",
        "SELECT 1; DROP TABLE customer",  # as officially, only the first statement runs
    ],
)
@pytest.mark.parametrize("keep_distinct", [False, True])
def test_writes_are_refused_and_file_unchanged(store_copy: Path, statement: str, keep_distinct: bool) -> None:
    before = _digest(store_copy)
    statement = statement.format(dir=store_copy.parent)
    result = exec_match(store_copy, statement, "SELECT count(*) FROM customer", keep_distinct=keep_distinct)
    assert result.score == 0 and result.reason
    assert _digest(store_copy) == before
    assert sorted(p.name for p in store_copy.parent.iterdir()) == ["store.sqlite"]
    assert exec_match(store_copy, "SELECT count(*) FROM customer", "SELECT count(*) FROM customer").score == 1
