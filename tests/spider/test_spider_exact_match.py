"""Exact set match and execution match on single pairs: the official behaviour, quirks included, and the opt-in
options that change the metric. (Every (exact, exec) expectation here is also what the official code gives; the
differential tests check thousands more.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from examples.spider.spider_eval import ExampleResult, GoldQueryError, evaluate

MINI = Path(__file__).resolve().parents[2] / "examples" / "spider" / "data" / "mini_spider"

JOIN_GOLD = "SELECT T2.Name FROM concert AS T1 JOIN stadium AS T2 ON T1.Stadium_ID = T2.Stadium_ID WHERE T1.Year = 2014"


def _score(pred: str, gold: str, *unofficial: str, etype: str = "all") -> ExampleResult:
    result = evaluate([(gold, "concert_singer")], [pred], MINI / "database", MINI / "tables.json", etype,
                      unofficial=unofficial)
    return result.examples[0]


def _both(pred: str, gold: str, *unofficial: str) -> tuple[int | None, int | None]:
    example = _score(pred, gold, *unofficial)
    return example.exact_score, example.exec_score


# (prediction, gold, (exact, exec)) -- what the official evaluation gives
OFFICIAL_CASES = [
    ("SELECT Age, Name, Country FROM singer WHERE Age > 30", "SELECT Name, Country, Age FROM singer WHERE Age > 30",
     (1, 1)),  # select order is free, and execution allows a column permutation
    ("SELECT Name FROM singer WHERE Is_male = 'T' AND Country = 'France' AND Age > 30",
     "SELECT Name FROM singer WHERE Age > 30 AND Country = 'France' AND Is_male = 'T'", (1, 1)),
    ("SELECT s.Name FROM concert AS c JOIN stadium AS s ON c.Stadium_ID = s.Stadium_ID WHERE c.Year = 2014",
     JOIN_GOLD, (1, 1)),
    ("SELECT stadium.Name FROM concert JOIN stadium ON concert.Stadium_ID = stadium.Stadium_ID WHERE concert.Year = "
     "2014", JOIN_GOLD, (1, 1)),
    ("select t2.name from CONCERT as t1 join STADIUM as t2 on t2.stadium_id = t1.stadium_id where t1.year = 2014",
     JOIN_GOLD, (1, 1)),
    # values are ignored by exact match, not by execution
    ("SELECT Name FROM singer WHERE Country = 'Japan'", 'SELECT Name FROM singer WHERE Country = "France"', (1, 0)),
    # row order is compared only when the gold text has "order by"
    ("SELECT Name FROM singer WHERE Age > 40 ORDER BY Name", "SELECT Name FROM singer WHERE Age > 40", (0, 1)),
    ("SELECT Name FROM stadium EXCEPT SELECT T2.Name FROM concert AS T1 JOIN stadium AS T2 ON T1.Stadium_ID = "
     "T2.Stadium_ID", "SELECT Name FROM stadium WHERE Stadium_ID NOT IN (SELECT Stadium_ID FROM concert)", (0, 1)),
    # the join's tables count, its ON columns do not (execution catches the wrong join)
    ("SELECT T2.Name FROM concert AS T1 JOIN stadium AS T2 ON T1.concert_ID = T2.Stadium_ID WHERE T1.Year = 2014",
     JOIN_GOLD, (1, 0)),
    ("SELECT T2.Name FROM singer_in_concert AS T1 JOIN stadium AS T2 ON T1.concert_ID = T2.Stadium_ID",
     "SELECT T2.Name FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.Singer_ID = T2.Singer_ID", (0, 0)),
    # outside Spider's grammar: compared as an empty query (exact 0), still executed
    (JOIN_GOLD.replace(" JOIN ", " INNER JOIN "), JOIN_GOLD, (0, 1)),
    ("SELECT Name FROM singer WHERE Country <> 'France'", "SELECT Name FROM singer WHERE Country != 'France'", (0, 1)),
    ("SELECT Year, count(*) AS n FROM concert GROUP BY Year ORDER BY n DESC LIMIT 1",
     "SELECT Year, count(*) FROM concert GROUP BY Year ORDER BY count(*) DESC LIMIT 1", (0, 1)),
    # DISTINCT: ignored at the top level, compared inside nested queries, removed before execution (aggregates too)
    ("SELECT DISTINCT Country FROM singer", "SELECT Country FROM singer", (1, 1)),
    ("SELECT Name FROM stadium WHERE Stadium_ID IN (SELECT DISTINCT Stadium_ID FROM concert)",
     "SELECT Name FROM stadium WHERE Stadium_ID IN (SELECT Stadium_ID FROM concert)", (0, 1)),
    ("SELECT count(Country) FROM singer", "SELECT count(DISTINCT Country) FROM singer", (1, 1)),
    # NOT is compared
    ("SELECT Name FROM stadium WHERE Stadium_ID IN (SELECT Stadium_ID FROM concert)",
     "SELECT Name FROM stadium WHERE Stadium_ID NOT IN (SELECT Stadium_ID FROM concert)", (0, 0)),
    # a LIMIT value is ignored, the direction is not
    ("SELECT Name FROM singer ORDER BY Age DESC LIMIT 3", "SELECT Name FROM singer ORDER BY Age DESC LIMIT 1", (1, 0)),
    ("SELECT Name FROM singer ORDER BY Age ASC LIMIT 1", "SELECT Name FROM singer ORDER BY Age DESC LIMIT 1", (0, 0)),
    # literals are stripped in WHERE subqueries but not inside FROM subqueries
    ("SELECT Name FROM singer WHERE Singer_ID IN (SELECT Singer_ID FROM singer WHERE Age > 30)",
     "SELECT Name FROM singer WHERE Singer_ID IN (SELECT Singer_ID FROM singer WHERE Age > 40)", (1, 0)),
    ("SELECT count(*) FROM (SELECT * FROM singer WHERE Age > 30)",
     "SELECT count(*) FROM (SELECT * FROM singer WHERE Age > 40)", (0, 0)),
    # set operations are compared part by part
    ("SELECT Country FROM singer WHERE Age > 40 intersect SELECT Country FROM singer WHERE Age < 30",
     "SELECT Country FROM singer WHERE Age > 40 INTERSECT SELECT Country FROM singer WHERE Age < 30", (1, 1)),
    ("SELECT Country FROM singer WHERE Age > 40 UNION SELECT Country FROM singer WHERE Age < 30",
     "SELECT Country FROM singer WHERE Age > 40 INTERSECT SELECT Country FROM singer WHERE Age < 30", (0, 0)),
]


@pytest.mark.parametrize(("pred", "gold", "expected"), OFFICIAL_CASES)
def test_official_behaviour(pred: str, gold: str, expected: tuple[int, int]) -> None:
    assert _both(pred, gold) == expected


def test_outside_grammar_is_named_and_scored_as_empty_query() -> None:
    example = _score("SELEC Name FROM", "SELECT Name FROM singer")
    assert example.exact_score == 0 and example.exec_score == 0
    assert example.exact_reason and "outside Spider's grammar" in example.exact_reason
    assert example.partial["select"]["pred_total"] == 0 and example.partial["select"]["label_total"] == 1


def test_unofficial_options_fix_what_the_official_grammar_rejects() -> None:
    inner = JOIN_GOLD.replace(" JOIN ", " INNER JOIN ")
    assert _both(inner, JOIN_GOLD, "lenient-parse") == (1, 1)
    assert _both("SELECT Name FROM singer WHERE Country <> 'France'",
                 "SELECT Name FROM singer WHERE Country != 'France'", "lenient-parse") == (1, 1)
    assert _both("SELECT Year, count(*) AS n FROM concert GROUP BY Year ORDER BY n DESC LIMIT 1",
                 "SELECT Year, count(*) FROM concert GROUP BY Year ORDER BY count(*) DESC LIMIT 1",
                 "lenient-parse") == (1, 1)
    wrong_on = JOIN_GOLD.replace("ON T1.Stadium_ID", "ON T1.concert_ID")
    example = _score(wrong_on, JOIN_GOLD, "strict-joins")
    assert example.exact_score == 0 and example.exact_reason and "strict-joins" in example.exact_reason
    flipped = JOIN_GOLD.replace("ON T1.Stadium_ID = T2.Stadium_ID", "ON T2.Stadium_ID = T1.Stadium_ID")
    assert _both(flipped, JOIN_GOLD, "strict-joins") == (1, 1)


def test_value_word_rewrite_is_official_and_can_be_turned_off() -> None:
    """The official script replaces every 'value' in a prediction by '1' before scoring it."""
    gold, pred = "SELECT Name FROM singer", "SELECT Name FROM singer WHERE length('value') = 5"
    example = _score(pred, gold, etype="exec")
    assert example.exec_score == 0 and example.pred == "SELECT Name FROM singer WHERE length('1') = 5"
    assert _score(pred, gold, "keep-value-word", etype="exec").exec_score == 1


def test_gold_outside_grammar_raises_with_the_fix() -> None:
    with pytest.raises(GoldQueryError, match="outside Spider's grammar.*fix or drop it"):
        _score("SELECT 1", "SELECT nme FROM singer")
