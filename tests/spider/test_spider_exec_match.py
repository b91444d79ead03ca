"""Execution match: result comparison rules, time limit, and read-only enforcement."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from examples.spider.spider_eval import GoldQueryError, exec_match
from examples.spider.spider_eval.exec_match import gold_is_ordered, results_match

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


def test_results_compared_as_multisets_unless_gold_is_ordered() -> None:
    assert results_match([(1,), (2,), (2,)], [(2,), (1,), (2,)], ordered=False)
    assert not results_match([(1,), (2,), (2,)], [(1,), (1,), (2,)], ordered=False)  # duplicates count
    assert not results_match([(1,), (2,)], [(2,), (1,)], ordered=True)
    assert results_match([(1, "a"), (2, "b")], [("a", 1), ("b", 2)], ordered=True)  # column permutation
    assert results_match([], [], ordered=False)


def test_row_order_matters_only_with_gold_order_by() -> None:
    gold_unordered = "SELECT name FROM product WHERE price > 50"
    pred_desc = "SELECT name FROM product WHERE price > 50 ORDER BY price DESC"
    assert exec_match(STORE_DB, pred_desc, gold_unordered).score == 1
    gold_ordered = "SELECT name FROM product WHERE price > 50 ORDER BY price"
    assert gold_is_ordered(gold_ordered) and not gold_is_ordered(gold_unordered)
    assert exec_match(STORE_DB, pred_desc, gold_ordered).score == 0
    assert gold_is_ordered("SELECT a FROM t UNION SELECT b FROM u ORDER BY 1")
    assert not gold_is_ordered("SELECT x FROM t WHERE y IN (SELECT y FROM u ORDER BY y LIMIT 2)")


def test_prediction_errors_score_zero_with_reason() -> None:
    result = exec_match(STORE_DB, "SELECT nope FROM product", "SELECT name FROM product")
    assert result.score == 0 and result.reason and "no such column" in result.reason
    result = exec_match(STORE_DB, "   ", "SELECT name FROM product")
    assert result.score == 0 and result.reason == "empty prediction"


def test_timeout_scores_zero() -> None:
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    result = exec_match(STORE_DB, endless, "SELECT count(*) FROM product", timeout_s=0.3)
    assert result.score == 0 and result.reason and "timed out" in result.reason


def test_gold_error_names_the_query() -> None:
    with pytest.raises(GoldQueryError, match="SELECT nope FROM product"):
        exec_match(STORE_DB, "SELECT name FROM product", "SELECT nope FROM product")


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
        "SELECT 1; DROP TABLE customer",
    ],
)
def test_writes_are_refused_and_file_unchanged(store_copy: Path, statement: str) -> None:
    before = _digest(store_copy)
    statement = statement.format(dir=store_copy.parent)
    result = exec_match(store_copy, statement, "SELECT count(*) FROM customer")
    assert result.score == 0 and result.reason and result.reason.startswith("prediction failed")
    assert _digest(store_copy) == before
    assert sorted(p.name for p in store_copy.parent.iterdir()) == ["store.sqlite"]
    assert exec_match(store_copy, "SELECT count(*) FROM customer", "SELECT count(*) FROM customer").score == 1
