"""Spider's exact set match, partial matching and hardness levels, scored exactly as the official evaluation.

Re-implements the scoring half of the official ``evaluation.py`` (test-suite-sql-eval, Apache-2.0) on the parse of
``grammar.parse_sql``, default settings (values disabled, DISTINCT disabled), with the same results:

* ``normalize`` -- literal values become ``None`` (nested queries in conditions are kept, with their own values
  removed; FROM subqueries are left as parsed), DISTINCT flags become ``None``, and a column that takes part in a
  foreign key maps to one canonical column when its table is in the top-level FROM. Only the top-level query and its
  INTERSECT / UNION / EXCEPT parts are normalized this way; nested queries in conditions keep raw columns and DISTINCT.
* ``partial_match`` -- per component (select, select(no AGG), where, where(no OP), group(no Having), group, order,
  and/or, IUEN, keywords) accuracy, recall and F1, each 1 only when the component matches completely.
* ``exact_match`` -- 1 when every component's F1 is 1 and the FROM table units are the same multiset. (The official
  code sorts the table units, which raises TypeError for two different FROM subqueries; here they are compared as a
  multiset, which is what that sort computes whenever it does not raise.)
* ``eval_hardness`` -- easy / medium / hard / extra from the gold parse, quirks included (in WHERE and HAVING the
  "aggregate" count counts negated conditions, and in HAVING also every AND / OR).

``join_conditions`` serves the opt-in ``strict-joins`` option (not part of the official metric).

    schema = read_schema(".../concert_singer.sqlite"); kmap = load_tables_json(...)["concert_singer"].foreign_key_map()
    gold = parse_sql("SELECT name FROM singer", schema)
    eval_hardness(gold)                                                                            # "easy"
    exact_match(normalize(parse_sql("select NAME from SINGER", schema), schema, kmap), normalize(gold, schema, kmap))
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .grammar import SQL_OPS, WHERE_OPS, Schema

__all__ = [
    "HARDNESS_LEVELS",
    "PARTIAL_TYPES",
    "count_component1",
    "count_component2",
    "count_others",
    "eval_hardness",
    "exact_match",
    "get_keywords",
    "join_conditions",
    "normalize",
    "partial_match",
]

HARDNESS_LEVELS: tuple[str, ...] = ("easy", "medium", "hard", "extra")
PARTIAL_TYPES: tuple[str, ...] = ("select", "select(no AGG)", "where", "where(no OP)", "group(no Having)", "group",
                                  "order", "and/or", "IUEN", "keywords")
_IN, _LIKE = WHERE_OPS.index("in"), WHERE_OPS.index("like")

Sql = dict[str, Any]
Partial = dict[str, dict[str, int]]


# -- normalisation (official rebuild_sql_val / rebuild_sql_col) ------------------------------------------------------
def _strip_values(sql: Sql | None) -> Sql | None:
    if sql is None:
        return None
    out = dict(sql)
    out["from"] = {**sql["from"], "conds": _condition_values(sql["from"]["conds"])}
    out["where"], out["having"] = _condition_values(sql["where"]), _condition_values(sql["having"])
    for op in SQL_OPS:
        out[op] = _strip_values(sql[op])
    return out


def _condition_values(condition: list[Any]) -> list[Any]:
    def nested(value: Any) -> Any:
        return _strip_values(value) if type(value) is dict else None

    return [unit if i % 2 else (*unit[:3], nested(unit[3]), nested(unit[4])) for i, unit in enumerate(condition)]


def _columns(sql: Sql | None, valid: set[str], kmap: dict[str, str]) -> Sql | None:
    if sql is None:
        return None

    def col(unit: Any) -> Any:
        if unit is None:
            return None
        agg, column, _ = unit
        return agg, kmap[column] if column in kmap and column in valid else column, None

    def val(unit: Any) -> Any:
        return None if unit is None else (unit[0], col(unit[1]), col(unit[2]))

    def cond(condition: list[Any]) -> list[Any]:
        return [unit if i % 2 else (unit[0], unit[1], val(unit[2]), *unit[3:]) for i, unit in enumerate(condition)]

    out = dict(sql)
    out["select"] = (None, [(agg, val(unit)) for agg, unit in sql["select"][1]])
    out["from"] = {"table_units": list(sql["from"]["table_units"]), "conds": cond(sql["from"]["conds"])}
    out["where"], out["having"] = cond(sql["where"]), cond(sql["having"])
    out["groupBy"] = [col(unit) for unit in sql["groupBy"]]
    if sql["orderBy"]:
        out["orderBy"] = (sql["orderBy"][0], [val(unit) for unit in sql["orderBy"][1]])
    for op in SQL_OPS:
        out[op] = _columns(sql[op], valid, kmap)
    return out


def normalize(sql: Sql, schema: Schema, kmap: dict[str, str]) -> Sql:
    """The official default normalisation of a parse before exact match (values and DISTINCT off, foreign keys)."""
    prefixes = [unit[1][:-2] for unit in sql["from"]["table_units"] if unit[0] == "table_unit"]
    valid = {col for col in schema.id_map.values() if "." in col and col[:col.index(".")] in prefixes}
    out = _columns(_strip_values(sql), valid, kmap)
    assert out is not None
    return out


# -- partial and exact match ---------------------------------------------------------------------------------------
def _score(count: int, pred_total: int, label_total: int) -> dict[str, int]:
    ok = int(pred_total == label_total and count == pred_total)
    return {"acc": ok, "rec": ok, "f1": ok, "label_total": label_total, "pred_total": pred_total}


def _matched(pred: list[Any], label: list[Any]) -> int:
    """How many of ``pred`` find a not yet used equal item in ``label``."""
    remaining, count = list(label), 0
    for item in pred:
        if item in remaining:
            remaining.remove(item)
            count += 1
    return count


def get_keywords(sql: Sql) -> set[str]:
    """SQL keywords compared by the ``keywords`` component."""
    keywords = {name for name, key in (("where", "where"), ("group", "groupBy"), ("having", "having")) if sql[key]}
    if sql["orderBy"]:
        keywords.update((sql["orderBy"][0], "order"))
    keywords.update(name for name in ("limit", "except", "union", "intersect") if sql[name] is not None)
    conditions = sql["from"]["conds"], sql["where"], sql["having"]
    units = [unit for condition in conditions for unit in condition[::2]]
    if "or" in [op for condition in conditions for op in condition[1::2]]:
        keywords.add("or")
    keywords.update(name for name, present in (("not", any(unit[0] for unit in units)),
                                                ("in", any(unit[1] == _IN for unit in units)),
                                                ("like", any(unit[1] == _LIKE for unit in units))) if present)
    return keywords


def partial_match(pred: Sql, label: Sql) -> Partial:
    """Per-component scores of two normalized parses (official ``eval_partial_match``)."""
    res: Partial = {}
    pred_sel, label_sel = pred["select"][1], label["select"][1]
    res["select"] = _score(_matched(pred_sel, label_sel), len(pred_sel), len(label_sel))
    res["select(no AGG)"] = _score(_matched([u[1] for u in pred_sel], [u[1] for u in label_sel]), len(pred_sel),
                                   len(label_sel))
    pred_conds, label_conds = pred["where"][::2], label["where"][::2]
    res["where"] = _score(_matched(pred_conds, label_conds), len(pred_conds), len(label_conds))
    res["where(no OP)"] = _score(_matched([u[2] for u in pred_conds], [u[2] for u in label_conds]), len(pred_conds),
                                 len(label_conds))
    pred_cols, label_cols = [u[1] for u in pred["groupBy"]], [u[1] for u in label["groupBy"]]
    res["group(no Having)"] = _score(_matched([c.split(".")[1] if "." in c else c for c in pred_cols],
                                              [c.split(".")[1] if "." in c else c for c in label_cols]),
                                     len(pred_cols), len(label_cols))
    pred_total, label_total = int(bool(pred["groupBy"])), int(bool(label["groupBy"]))
    same = pred_total == label_total == 1 and pred_cols == label_cols and pred["having"] == label["having"]
    res["group"] = _score(int(same), pred_total, label_total)
    pred_total, label_total = int(len(pred["orderBy"]) > 0), int(len(label["orderBy"]) > 0)
    same = (label_total == 1 and pred["orderBy"] == label["orderBy"]
            and (pred["limit"] is None) == (label["limit"] is None))
    res["order"] = _score(int(same), pred_total, label_total)
    pred_ao, label_ao = set(pred["where"][1::2]), set(label["where"][1::2])
    # official quirk: when they differ, the totals come back swapped (label_total = the prediction's count)
    res["and/or"] = _score(1, 1, 1) if pred_ao == label_ao else _score(0, len(label_ao), len(pred_ao))
    count = pred_total = label_total = 0
    for op in ("intersect", "except", "union"):
        pred_total += pred[op] is not None
        label_total += label[op] is not None
        if pred[op] is not None and label[op] is not None:
            count += exact_match(pred[op], label[op])[0]
    res["IUEN"] = _score(count, pred_total, label_total)
    pred_keys, label_keys = get_keywords(pred), get_keywords(label)
    res["keywords"] = _score(len(pred_keys & label_keys), len(pred_keys), len(label_keys))
    return res


def exact_match(pred: Sql, label: Sql) -> tuple[int, Partial]:
    """Exact set match (0 or 1) of two normalized parses, and the partial scores (official ``eval_exact_match``)."""
    partial = partial_match(pred, label)
    if any(score["f1"] != 1 for score in partial.values()):
        return 0, partial
    label_units, pred_units = label["from"]["table_units"], pred["from"]["table_units"]
    if not label_units:
        return 1, partial
    return int(len(pred_units) == len(label_units) and _matched(pred_units, label_units) == len(label_units)), partial


def join_conditions(sql: Sql | None) -> Counter[tuple[Any, ...]]:
    """ON conditions of a raw parse and all its subqueries, sides unordered (for the opt-in strict-joins option)."""
    found: Counter[tuple[Any, ...]] = Counter()
    if sql is None:
        return found
    for negated, op, val_unit, val1, _ in sql["from"]["conds"][::2]:
        right = val1[1] if isinstance(val1, tuple) else "value"
        found[(negated, op, frozenset((val_unit[1][1], right)))] += 1
    nested = [unit[1] for unit in sql["from"]["table_units"] if unit[0] == "sql"]
    for condition in (sql["from"]["conds"], sql["where"], sql["having"]):
        nested.extend(value for unit in condition[::2] for value in unit[3:] if type(value) is dict)
    for part in [*nested, *(sql[op] for op in SQL_OPS)]:
        found += join_conditions(part)
    return found


# -- hardness --------------------------------------------------------------------------------------------------------
def count_component1(sql: Sql) -> int:
    count = sum(len(sql[key]) > 0 for key in ("where", "groupBy", "orderBy")) + (sql["limit"] is not None)
    if sql["from"]["table_units"]:
        count += len(sql["from"]["table_units"]) - 1
    conditions = sql["from"]["conds"], sql["where"], sql["having"]
    count += [op for condition in conditions for op in condition[1::2]].count("or")
    return count + sum(unit[1] == _LIKE for condition in conditions for unit in condition[::2])


def count_component2(sql: Sql) -> int:
    conditions = sql["from"]["conds"], sql["where"], sql["having"]
    nested = sum(type(value) is dict for condition in conditions for unit in condition[::2] for value in unit[3:])
    return nested + sum(sql[op] is not None for op in SQL_OPS)


def count_others(sql: Sql) -> int:
    def aggs(units: list[Any]) -> int:  # official count_agg: item[0] != 0, applied to whatever the list holds
        return sum(unit[0] != 0 for unit in units)

    count = aggs(sql["select"][1]) + aggs(sql["where"][::2]) + aggs(sql["groupBy"])
    if sql["orderBy"]:
        units = sql["orderBy"][1]
        count += aggs([u[1] for u in units if u[1]] + [u[2] for u in units if u[2]])
    count += aggs(sql["having"])  # the raw list: negated conditions and every "and" / "or" string count
    return (int(count > 1) + int(len(sql["select"][1]) > 1) + int(len(sql["where"]) > 1)
            + int(len(sql["groupBy"]) > 1))


def eval_hardness(sql: Sql) -> str:
    """Spider difficulty of a (raw, not normalized) gold parse: easy, medium, hard or extra."""
    c1, c2, others = count_component1(sql), count_component2(sql), count_others(sql)
    if c1 <= 1 and others == 0 and c2 == 0:
        return "easy"
    if (others <= 2 and c1 <= 1 and c2 == 0) or (c1 <= 2 and others < 2 and c2 == 0):
        return "medium"
    if ((others > 2 and c1 <= 2 and c2 == 0) or (2 < c1 <= 3 and others <= 2 and c2 == 0)
            or (c1 <= 1 and others == 0 and c2 <= 1)):
        return "hard"
    return "extra"
