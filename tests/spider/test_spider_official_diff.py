"""Differential tests: ``examples.spider.spider_eval`` against the official Spider test-suite evaluation.

The official code is the test-only dependency nl2sql360 1.1.0 (``official_spider.py`` says how it is loaded and what
is patched: only NLTK's offline tokenizer call and the progress bar). Pairs are made by program from the bundled
mini-Spider gold queries (``spider_mutations.py``). For every pair the tests assert the same hardness, execution
score, exact-match score and partial-matching scores as the official ``evaluate()``, and the same table (official
``print_scores``) for the whole set; every distinct query must also parse to the same structure as the official
``get_sql`` (or fail in both).

Pairs on which the official code itself crashes are scored as the official ``evaluate()`` scores them:
* a prediction outside the grammar: ``evaluate()`` catches the parse error and compares an empty query;
* two different FROM subqueries in a prediction whose other components match: the official ``sorted`` of the table
  units raises TypeError; those pairs are scored by the same official code with a sort that cannot fail, which
  compares the table units as a multiset, as it does whenever the sort succeeds (``official_pair``);
* an empty prediction: the official script cannot read one (a blank line ends a session); here it scores 0 / 0 and
  is compared, for partial matching, as the empty query of an unparsable prediction.
The databases are copied first, since the official code opens them read-write.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from official_spider import load_official, official_pair, official_table  # noqa: E402
from spider_mutations import MINI, PRED_MUTATIONS, Pair, bundled_golds, make_pairs  # noqa: E402

from examples.spider.spider_eval import (  # noqa: E402
    SqlParseError,
    evaluate,
    load_tables_json,
    normalize,
    parse_sql,
    read_schema,
    result_eq,
)
from examples.spider.spider_eval.grammar import empty_sql  # noqa: E402


@pytest.fixture(scope="module")
def official() -> SimpleNamespace:
    return load_official()


@pytest.fixture(scope="module")
def db_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("spider") / "database"
    shutil.copytree(MINI / "database", target)
    return target


@pytest.fixture(scope="module")
def kmaps(official: SimpleNamespace) -> dict[str, Any]:
    return official.evaluation.build_foreign_key_map_from_json(str(MINI / "tables.json"))


def _keep_gold(official: SimpleNamespace, db_dir: Path) -> Callable[[str, str], bool]:
    """A gold the official code can score: it parses with the official ``get_sql`` and runs without error."""
    process_sql = official.process_sql

    def keep(sql: str, db_id: str) -> bool:
        path = db_dir / db_id / f"{db_id}.sqlite"
        try:
            process_sql.get_sql(process_sql.Schema(process_sql.get_schema(str(path))), sql)
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                conn.execute(sql).fetchall()
            finally:
                conn.close()
        except Exception:  # noqa: BLE001 - anything the official code cannot score is not a gold here
            return False
        return True

    return keep


def _compare(official: SimpleNamespace, db_dir: Path, kmaps: dict[str, Any], pairs: list[Pair],
             etype: str = "all", keep_distinct: bool = False) -> Counter[str]:
    """Assert per-pair and table equality with the official ``evaluate()``; return what was seen."""
    entries, seen = [], Counter[str]()
    for pair in pairs:
        entry, crash = official_pair(official, pair.gold, pair.db_id, pair.pred, db_dir, kmaps, etype, keep_distinct)
        entries.append(entry)
        seen[crash or "official evaluate() scored it"] += 1
    ours = evaluate([(p.gold, p.db_id) for p in pairs], [p.pred for p in pairs], db_dir, MINI / "tables.json",
                    etype, keep_distinct=keep_distinct)
    mismatches = []
    for pair, entry, example in zip(pairs, entries, ours.examples, strict=True):
        theirs = {"hardness": entry["hardness"], "exec": entry.get("exec"), "partial": entry.get("partial"),
                  "exact": None if "exact" not in entry else int(entry["exact"])}
        mine = {"hardness": example.hardness, "exec": example.exec_score, "partial": example.partial or None,
                "exact": example.exact_score}
        if theirs != mine:
            diff = {key: (theirs[key], mine[key]) for key in theirs if theirs[key] != mine[key]}
            mismatches.append(f"[{pair.kind}] gold: {pair.gold}\n  pred: {pair.pred}\n  official vs ours: {diff}")
        seen[f"hardness {example.hardness}"] += 1
        seen[f"exec {example.exec_score}"] += 1
        seen[f"exact {example.exact_score}"] += 1
        seen[f"kind {pair.kind.split(' + ')[0]}"] += 1
    assert not mismatches, f"{len(mismatches)} of {len(pairs)} pairs differ:\n" + "\n".join(mismatches[:10])
    assert ours.official_table() + "\n" == official_table(official, entries, etype)
    assert ours.format_table() == "\n".join([*ours.header(), ours.official_table()])
    return seen


def test_bundled_golds_and_their_mutations_score_as_official(official: SimpleNamespace, db_dir: Path,
                                                             kmaps: dict[str, Any]) -> None:
    pairs = make_pairs(seed=1, gold_variants=0, preds_per_gold=4, keep_gold=_keep_gold(official, db_dir))
    seen = _compare(official, db_dir, kmaps, pairs)
    assert len(pairs) >= 500 and seen["exec 1"] and seen["exec 0"] and seen["exact 1"] and seen["exact 0"]


def test_keep_distinct_and_single_metric_tables_as_official(official: SimpleNamespace, db_dir: Path,
                                                            kmaps: dict[str, Any]) -> None:
    pairs = make_pairs(seed=2, gold_variants=1, preds_per_gold=2, keep_gold=_keep_gold(official, db_dir))
    _compare(official, db_dir, kmaps, pairs, keep_distinct=True)
    _compare(official, db_dir, kmaps, pairs[:200], etype="exec")
    _compare(official, db_dir, kmaps, pairs[:200], etype="match")


@pytest.mark.slow
def test_thousands_of_generated_pairs_score_as_official(official: SimpleNamespace, db_dir: Path,
                                                        kmaps: dict[str, Any]) -> None:
    """About 5,000 pairs over 440 golds (the bundled ones and mutations of them), every prediction mutation used;
    the pairs the official code crashes on are scored as the module docstring says, and some must occur."""
    pairs = make_pairs(seed=0, gold_variants=3, preds_per_gold=10, keep_gold=_keep_gold(official, db_dir))
    seen = _compare(official, db_dir, kmaps, pairs)
    assert len(pairs) >= 4000
    assert {f"hardness {level}" for level in ("easy", "medium", "hard", "extra")} <= set(seen)
    assert not [name for name in PRED_MUTATIONS if not seen[f"kind {name}"]], "a mutation was never applied"
    assert seen["official evaluate() raises TypeError sorting FROM subqueries"] > 0


def test_every_query_parses_as_official_get_sql(official: SimpleNamespace, db_dir: Path) -> None:
    process_sql = official.process_sql
    queries = sorted({(q, p.db_id) for p in make_pairs(seed=3, gold_variants=1, preds_per_gold=8)
                      for q in (p.gold, p.pred)})
    outcomes: Counter[str] = Counter()
    for sql, db_id in queries:
        path = str(db_dir / db_id / f"{db_id}.sqlite")
        try:
            theirs = process_sql.get_sql(process_sql.Schema(process_sql.get_schema(path)), sql)
        except Exception:  # noqa: BLE001 - the official parser fails on this query
            theirs = None
        try:
            mine = parse_sql(sql, read_schema(path))
        except SqlParseError:
            mine = None
        assert mine == theirs, f"{db_id}: {sql}"
        outcomes["parsed" if mine is not None else "failed in both"] += 1
    assert len(queries) >= 1000 and outcomes["parsed"] and outcomes["failed in both"]


def test_empty_predictions_score_zero_and_compare_as_an_empty_query(official: SimpleNamespace, db_dir: Path,
                                                                    kmaps: dict[str, Any]) -> None:
    golds = bundled_golds()
    ours = evaluate(golds, ["" for _ in golds], db_dir, MINI / "tables.json")
    evaluation, process_sql = official.evaluation, official.process_sql
    schemas = load_tables_json(MINI / "tables.json")
    for (gold, db_id), example in zip(golds, ours.examples, strict=True):
        assert example.empty_prediction and example.exec_score == 0 and example.exact_score == 0
        schema = process_sql.Schema(process_sql.get_schema(str(db_dir / db_id / f"{db_id}.sqlite")))
        g_sql = process_sql.get_sql(schema, gold)
        g_valid = evaluation.build_valid_col_units(g_sql["from"]["table_units"], schema)
        g_sql = evaluation.rebuild_sql_col(g_valid, evaluation.rebuild_sql_val(g_sql), kmaps[db_id])
        p_sql = evaluation.rebuild_sql_col([], evaluation.rebuild_sql_val(empty_sql()), kmaps[db_id])
        assert example.partial == evaluation.Evaluator().eval_partial_match(p_sql, g_sql)
        ours_schema = read_schema(db_dir / db_id / f"{db_id}.sqlite")
        assert normalize(empty_sql(), ours_schema, schemas[db_id].foreign_key_map()) == p_sql
    assert ours.execution == ours.exact == 0.0


def test_result_comparison_as_official_on_random_tables(official: SimpleNamespace) -> None:
    rng = random.Random(7)
    values = [0, 1, 2, 2.0, 2.5, "a", "b", "1", None, b"x", -1]
    checked = Counter[bool]()
    for _ in range(3000):
        width, height = rng.randint(1, 5), rng.randint(0, 4)
        gold = [tuple(rng.choice(values) for _ in range(width)) for _ in range(height)]
        pred = [tuple(row) for row in gold]
        for _ in range(rng.randint(0, 2)):
            choice = rng.randrange(4)
            if choice == 0 and width > 1:  # permute columns
                perm = rng.sample(range(width), width)
                pred = [tuple(row[i] for i in perm) for row in pred]
            elif choice == 1:
                rng.shuffle(pred)
            elif choice == 2 and pred:
                i, j = rng.randrange(len(pred)), rng.randrange(width)
                row = list(pred[i])
                row[j] = rng.choice(values)
                pred[i] = tuple(row)
            elif choice == 3 and pred:
                pred.append(pred[0])
                pred.pop(rng.randrange(len(pred)))
        for order in (False, True):
            expected = official.exec_eval.result_eq(gold, pred, order_matters=order)
            assert result_eq(gold, pred, order) == expected, (gold, pred, order)
            checked[expected] += 1
    assert checked[True] and checked[False]


def test_foreign_key_maps_as_official(kmaps: dict[str, Any]) -> None:
    assert {db_id: schema.foreign_key_map() for db_id, schema in load_tables_json(MINI / "tables.json").items()} \
        == kmaps
