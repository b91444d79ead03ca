"""Hardness levels: counts worked out by hand with the official evaluation.py rules (the differential tests check
the same against the official code on thousands of queries)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from examples.spider.spider_eval import Schema, eval_hardness, load_tables_json, parse_sql, read_schema
from examples.spider.spider_eval.matching import count_component1, count_component2, count_others

MINI = Path(__file__).resolve().parents[2] / "examples" / "spider" / "data" / "mini_spider"
SCHEMAS = load_tables_json(MINI / "tables.json")


def _schema(db_id: str) -> Schema:
    """The grammar's schema, read from the SQLite file as the official code does."""
    return read_schema(MINI / "database" / db_id / f"{db_id}.sqlite")


# (query, c1, c2, others, level) -- counts worked out with the official rules.
CASES = [
    ("SELECT count(*) FROM singer", 0, 0, 0, "easy"),
    ("SELECT Name FROM singer WHERE Age > 40", 1, 0, 0, "easy"),
    ("SELECT Country FROM singer GROUP BY Country HAVING count(*) > 1", 1, 0, 0, "easy"),  # HAVING is not in c1
    ("SELECT Name, Country FROM singer WHERE Age > 40", 1, 0, 1, "medium"),
    ("SELECT avg(Age), min(Age), max(Age) FROM singer WHERE Country = 'France'", 1, 0, 2, "medium"),
    ("SELECT Song_Name, Song_release_year FROM singer ORDER BY Age LIMIT 1", 2, 0, 1, "medium"),
    ("SELECT count(*) FROM concert WHERE Year = 2014 OR Year = 2015", 2, 0, 1, "medium"),
    ("SELECT Name, Country FROM singer WHERE Song_Name LIKE '%Hey%'", 2, 0, 1, "medium"),
    # GROUP BY + ORDER BY + LIMIT: c1 = 3 -> hard; with a join c1 = 4 -> extra
    ("SELECT Year FROM concert GROUP BY Year ORDER BY count(*) DESC LIMIT 1", 3, 0, 0, "hard"),
    (
        "SELECT T2.Name FROM concert AS T1 JOIN stadium AS T2 ON T1.Stadium_ID = T2.Stadium_ID "
        "GROUP BY T1.Stadium_ID ORDER BY count(*) DESC LIMIT 1",
        4,
        0,
        0,
        "extra",
    ),
    ("SELECT Name FROM stadium WHERE Stadium_ID NOT IN (SELECT Stadium_ID FROM concert)", 1, 1, 0, "hard"),
    (
        "SELECT Name FROM stadium EXCEPT SELECT T2.Name FROM concert AS T1 JOIN stadium AS T2 "
        "ON T1.Stadium_ID = T2.Stadium_ID WHERE T1.Year = 2014",
        0,
        1,
        0,
        "hard",
    ),
    (
        "SELECT T2.Name, T2.Location FROM concert AS T1 JOIN stadium AS T2 ON T1.Stadium_ID = T2.Stadium_ID "
        "WHERE T1.Year = 2014 INTERSECT SELECT T2.Name, T2.Location FROM concert AS T1 JOIN stadium AS T2 "
        "ON T1.Stadium_ID = T2.Stadium_ID WHERE T1.Year = 2015",
        2,
        1,
        1,
        "extra",
    ),
    # official quirk: a negated WHERE condition counts as an aggregation in count_others
    ("SELECT max(Age) FROM singer WHERE Singer_ID NOT IN (SELECT Singer_ID FROM singer_in_concert)", 1, 1, 1, "extra"),
]


@pytest.mark.parametrize(("query", "c1", "c2", "others", "level"), CASES)
def test_official_counts_and_level(query: str, c1: int, c2: int, others: int, level: str) -> None:
    sql = parse_sql(query, _schema("concert_singer"))
    assert (count_component1(sql), count_component2(sql), count_others(sql)) == (c1, c2, others)
    assert eval_hardness(sql) == level


def test_mini_spider_covers_all_levels_in_both_splits() -> None:
    for file_name in ("train_spider.json", "dev.json"):
        examples = json.loads((MINI / file_name).read_text())
        levels = Counter(eval_hardness(parse_sql(e["query"], _schema(e["db_id"]))) for e in examples)
        assert set(levels) == {"easy", "medium", "hard", "extra"}, (file_name, levels)


def test_mini_spider_size_and_split() -> None:
    train = json.loads((MINI / "train_spider.json").read_text())
    dev = json.loads((MINI / "dev.json").read_text())
    assert len(train) + len(dev) >= 80
    assert 0.2 <= len(dev) / (len(train) + len(dev)) <= 0.3
    assert {e["db_id"] for e in train} == {e["db_id"] for e in dev} == set(SCHEMAS)
