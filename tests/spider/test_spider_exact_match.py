"""Exact set match: invariances (column / condition order, aliases, case) and real differences."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples.spider.spider_eval import exact_match, exec_match, load_tables_json, parse_sql
from examples.spider.spider_eval.components import SqlParseError

MINI = Path(__file__).resolve().parents[2] / "examples" / "spider" / "data" / "mini_spider"
SCHEMAS = load_tables_json(MINI / "tables.json")
CONCERT = SCHEMAS["concert_singer"]
CONCERT_DB = MINI / "database" / "concert_singer" / "concert_singer.sqlite"

JOIN_GOLD = "SELECT T2.Name FROM concert AS T1 JOIN stadium AS T2 ON T1.Stadium_ID = T2.Stadium_ID WHERE T1.Year = 2014"


def _both(pred: str, gold: str) -> tuple[int, int]:
    return exact_match(pred, gold, CONCERT).score, exec_match(CONCERT_DB, pred, gold).score


def test_reordered_select_columns_match() -> None:
    gold = "SELECT Name, Country, Age FROM singer WHERE Age > 30"
    pred = "SELECT Age, Name, Country FROM singer WHERE Age > 30"
    assert _both(pred, gold) == (1, 1)  # execution allows a column permutation too


def test_reordered_and_conditions_match() -> None:
    gold = "SELECT Name FROM singer WHERE Age > 30 AND Country = 'France' AND Is_male = 'T'"
    pred = "SELECT Name FROM singer WHERE Is_male = 'T' AND Country = 'France' AND Age > 30"
    assert _both(pred, gold) == (1, 1)


def test_alias_change_matches() -> None:
    pred = "SELECT s.Name FROM concert AS c JOIN stadium AS s ON c.Stadium_ID = s.Stadium_ID WHERE c.Year = 2014"
    assert _both(pred, JOIN_GOLD) == (1, 1)
    no_alias = (
        "SELECT stadium.Name FROM concert JOIN stadium ON concert.Stadium_ID = stadium.Stadium_ID "
        "WHERE concert.Year = 2014"
    )
    assert _both(no_alias, JOIN_GOLD) == (1, 1)


def test_keyword_and_identifier_case_changes_match() -> None:
    pred = "select t2.name from CONCERT as t1 join STADIUM as t2 on t2.stadium_id = t1.stadium_id where t1.year = 2014"
    assert _both(pred, JOIN_GOLD) == (1, 1)


def test_values_are_ignored_but_execution_is_not() -> None:
    gold = 'SELECT Name FROM singer WHERE Country = "France"'  # Spider-style double-quoted literal
    pred = "SELECT Name FROM singer WHERE Country = 'Japan'"
    assert exact_match(pred, gold, CONCERT).score == 1
    assert exec_match(CONCERT_DB, pred, gold).score == 0


def test_extra_order_by_executes_equal_but_does_not_match() -> None:
    gold = "SELECT Name FROM singer WHERE Age > 40"
    pred = "SELECT Name FROM singer WHERE Age > 40 ORDER BY Name"
    result = exact_match(pred, gold, CONCERT)
    assert result.score == 0 and not result.components["order"]
    assert exec_match(CONCERT_DB, pred, gold).score == 1


def test_except_versus_not_in_executes_equal_but_does_not_match() -> None:
    gold = "SELECT Name FROM stadium WHERE Stadium_ID NOT IN (SELECT Stadium_ID FROM concert)"
    pred = (
        "SELECT Name FROM stadium EXCEPT SELECT T2.Name FROM concert AS T1 JOIN stadium AS T2 "
        "ON T1.Stadium_ID = T2.Stadium_ID"
    )
    assert _both(pred, gold) == (0, 1)


def test_wrong_join_fails_both() -> None:
    # the stadium names of 2014's concerts, answered with the names of the singers of those concerts
    pred = ("SELECT T2.Name FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.Singer_ID = T2.Singer_ID "
            "JOIN concert AS T3 ON T1.concert_ID = T3.concert_ID WHERE T3.Year = 2014")
    result = exact_match(pred, JOIN_GOLD, CONCERT)
    assert result.score == 0 and not result.components["from"]
    assert exec_match(CONCERT_DB, pred, JOIN_GOLD).score == 0


def test_join_columns_are_ignored_like_the_official_script_unless_strict() -> None:
    """Right tables, wrong ON columns: the official exact match does not compare join conditions (execution
    accuracy catches it); strict_joins=True does."""
    pred = "SELECT T2.Name FROM concert AS T1 JOIN stadium AS T2 ON T1.concert_ID = T2.Stadium_ID WHERE T1.Year = 2014"
    assert exact_match(pred, JOIN_GOLD, CONCERT).score == 1
    strict = exact_match(pred, JOIN_GOLD, CONCERT, strict_joins=True)
    assert strict.score == 0 and not strict.components["from"]
    assert exec_match(CONCERT_DB, pred, JOIN_GOLD).score == 0


def test_wrong_table_fails_both() -> None:
    gold = "SELECT T2.Name FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.Singer_ID = T2.Singer_ID"
    pred = "SELECT T2.Name FROM singer_in_concert AS T1 JOIN stadium AS T2 ON T1.concert_ID = T2.Stadium_ID"
    assert _both(pred, gold) == (0, 0)


def test_select_alias_in_order_by_matches_aggregate() -> None:
    gold = "SELECT Year, count(*) FROM concert GROUP BY Year ORDER BY count(*) DESC LIMIT 1"
    pred = "SELECT Year, count(*) AS n FROM concert GROUP BY Year ORDER BY n DESC LIMIT 1"
    assert _both(pred, gold) == (1, 1)


def test_limit_value_ignored_but_direction_is_not() -> None:
    gold = "SELECT Name FROM singer ORDER BY Age DESC LIMIT 1"
    assert exact_match("SELECT Name FROM singer ORDER BY Age DESC LIMIT 3", gold, CONCERT).score == 1
    assert exact_match("SELECT Name FROM singer ORDER BY Age ASC LIMIT 1", gold, CONCERT).score == 0


def test_unparsable_prediction_scores_zero_with_reason() -> None:
    result = exact_match("SELEC Name FROM", "SELECT Name FROM singer", CONCERT)
    assert result.score == 0 and result.reason and "not parsable" in result.reason
    result = exact_match("SELECT nme FROM singer", "SELECT Name FROM singer", CONCERT)
    assert result.score == 0 and result.reason and "nme" in result.reason


def test_unknown_gold_column_raises() -> None:
    with pytest.raises(SqlParseError, match="nme"):
        parse_sql("SELECT nme FROM singer", CONCERT)


def test_set_operations_are_compared_recursively() -> None:
    gold = "SELECT Country FROM singer WHERE Age > 40 INTERSECT SELECT Country FROM singer WHERE Age < 30"
    assert exact_match(gold.replace("INTERSECT", "intersect"), gold, CONCERT).score == 1
    assert exact_match(gold.replace("INTERSECT", "UNION"), gold, CONCERT).score == 0
    assert exact_match(gold.replace("< 30", "< 30 OR Age > 50"), gold, CONCERT).score == 0
