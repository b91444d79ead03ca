"""Spider exact set match (the official ``--etype match`` metric with values disabled).

A prediction matches the gold query when every component matches (Yu et al., 2018, Sec. 4):

* ``select``   -- the multiset of ``(aggregate, value unit)`` items (column order does not matter);
* ``where``    -- the multiset of condition units (order of AND-ed conditions does not matter);
* ``group``    -- GROUP BY columns (compared by column name) and, with HAVING, group columns plus having units;
* ``order``    -- ORDER BY items and direction, and whether both or neither have a LIMIT (its value is ignored);
* ``and/or``   -- the set of WHERE connectives;
* ``IUEN``     -- INTERSECT / UNION / EXCEPT continuations, compared recursively;
* ``keywords`` -- the set of SQL keywords used (where, group, having, order, asc/desc, limit, except,
  union, intersect, or, not, in, like);
* ``from``     -- the multiset of tables (and subqueries) in FROM. Join conditions are not compared, as in the
  official script (it parses them for keywords only); ``strict_joins=True`` also compares the ON column pairs.

As in the official script's default setting, literal values are ignored (only nested queries are kept),
DISTINCT is ignored, and columns linked by a foreign key count as the same column when their table is in FROM.
Table aliases are resolved to table names and all names are case-insensitive.

Differences from the official script: nested queries are normalised like the top level (the official one skips
them for foreign keys), HAVING units are compared as a multiset (the official compares an ordered list), and SQL
outside Spider's grammar (functions, column-vs-column arithmetic chains) is kept as an opaque unit instead of
failing. With the official script, a join on the right tables but the wrong columns still matches exactly
(execution accuracy catches it); ``strict_joins=True`` makes it a mismatch.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from .components import ColUnit, Condition, CondUnit, SqlComponents, SqlParseError, TableUnit, Value, ValUnit, parse_sql
from .schema import DbSchema

__all__ = [
    "COMPONENTS",
    "MatchResult",
    "compare_components",
    "exact_match",
    "get_keywords",
    "normalize",
]

COMPONENTS: tuple[str, ...] = (
    "select",
    "where",
    "group(no having)",
    "group",
    "order",
    "and/or",
    "IUEN",
    "keywords",
    "from",
)


@dataclass
class MatchResult:
    """Outcome of an exact-match comparison for one example."""

    score: int
    components: dict[str, bool] = field(default_factory=dict)
    reason: str | None = None


# -- normalisation ------------------------------------------------------------------------------------------
def _col(unit: ColUnit | None, valid: set[str], fk_map: dict[str, str]) -> ColUnit | None:
    if unit is None:
        return None
    column = unit.column
    if column in valid and column in fk_map:
        column = fk_map[column]
    return ColUnit(unit.agg, column, False)


def _val(unit: ValUnit, valid: set[str], fk_map: dict[str, str]) -> ValUnit:
    left = _col(unit.left, valid, fk_map)
    assert left is not None
    return ValUnit(unit.op, left, _col(unit.right, valid, fk_map))


def _value(value: Value, schema: DbSchema) -> Value:
    return normalize(value, schema) if isinstance(value, SqlComponents) else None


def _cond(condition: Condition, valid: set[str], fk_map: dict[str, str], schema: DbSchema) -> Condition:
    units = tuple(
        CondUnit(u.negated, u.op, _val(u.val_unit, valid, fk_map), _value(u.val1, schema), _value(u.val2, schema))
        for u in condition.units
    )
    return Condition(units, condition.connectors)


def _valid_columns(sql: SqlComponents, schema: DbSchema) -> set[str]:
    tables = {unit.table for unit in sql.tables if unit.kind == "table" and unit.table}
    return {col for col in schema.column_ids() if col != "__all__" and f"__{col[2:].split('.')[0]}__" in tables}


def _join_pairs(sql: SqlComponents, valid: set[str], fk_map: dict[str, str]) -> Condition:
    """Join conditions keep their column-valued right-hand side (as ``val1``) so wrong joins are detected."""
    units = []
    for unit in sql.join_conds.units:
        val1 = _col(unit.val1, valid, fk_map) if isinstance(unit.val1, ColUnit) else None
        units.append(CondUnit(unit.negated, unit.op, _val(unit.val_unit, valid, fk_map), val1, None))
    return Condition(tuple(units), sql.join_conds.connectors)


def normalize(sql: SqlComponents, schema: DbSchema) -> SqlComponents:
    """Drop values and DISTINCT, and map foreign-key columns to one canonical column."""
    fk_map = schema.foreign_key_map()
    valid = _valid_columns(sql, schema)
    tables = tuple(
        TableUnit("sql", sql=normalize(unit.sql, schema)) if unit.kind == "sql" and unit.sql else unit
        for unit in sql.tables
    )
    return replace(
        sql,
        select=tuple((agg, _val(unit, valid, fk_map)) for agg, unit in sql.select),
        distinct=False,
        tables=tables,
        join_conds=_join_pairs(sql, valid, fk_map),
        where=_cond(sql.where, valid, fk_map, schema),
        group_by=tuple(c for c in (_col(u, valid, fk_map) for u in sql.group_by) if c is not None),
        having=_cond(sql.having, valid, fk_map, schema),
        order_by=tuple(_val(u, valid, fk_map) for u in sql.order_by),
        intersect=normalize(sql.intersect, schema) if sql.intersect else None,
        union=normalize(sql.union, schema) if sql.union else None,
        except_=normalize(sql.except_, schema) if sql.except_ else None,
    )


# -- component comparison -----------------------------------------------------------------------------------
def get_keywords(sql: SqlComponents) -> set[str]:
    keywords: set[str] = set()
    for name, present in (
        ("where", bool(sql.where)),
        ("group", bool(sql.group_by)),
        ("having", bool(sql.having)),
        ("order", bool(sql.order_by)),
        ("limit", sql.limit is not None),
        ("except", sql.except_ is not None),
        ("union", sql.union is not None),
        ("intersect", sql.intersect is not None),
    ):
        if present:
            keywords.add(name)
    if sql.order_by and sql.order_dir:
        keywords.add(sql.order_dir)
    units = [*sql.join_conds.units, *sql.where.units, *sql.having.units]
    connectors = [*sql.join_conds.connectors, *sql.where.connectors, *sql.having.connectors]
    if "or" in connectors:
        keywords.add("or")
    if any(unit.negated for unit in units):
        keywords.add("not")
    if any(unit.op == "in" for unit in units):
        keywords.add("in")
    if any(unit.op == "like" for unit in units):
        keywords.add("like")
    return keywords


def _group_names(sql: SqlComponents) -> Counter[str]:
    return Counter(unit.column.split(".", 1)[-1] for unit in sql.group_by)


def _iuen(pred: SqlComponents, gold: SqlComponents, strict_joins: bool = False) -> bool:
    for p_part, g_part in ((pred.intersect, gold.intersect), (pred.except_, gold.except_), (pred.union, gold.union)):
        if (p_part is None) != (g_part is None):
            return False
        if p_part is not None and g_part is not None and not _match(p_part, g_part, strict_joins):
            return False
    return True


def _from(pred: SqlComponents, gold: SqlComponents, strict_joins: bool = False) -> bool:
    if not gold.tables:
        return True
    key = lambda unit: (unit.kind, unit.table or "", repr(unit.sql))  # noqa: E731
    if sorted(map(key, pred.tables)) != sorted(map(key, gold.tables)):
        return False
    if not strict_joins:
        return True
    return Counter(_pair(u) for u in pred.join_conds.units) == Counter(_pair(u) for u in gold.join_conds.units)


def _pair(unit: CondUnit) -> tuple[bool, str, frozenset[object]]:
    """A join condition as (negated, op, unordered pair of sides): ``a = b`` equals ``b = a``."""
    return unit.negated, unit.op, frozenset((unit.val_unit.left, unit.val1))


def compare_components(pred: SqlComponents, gold: SqlComponents, strict_joins: bool = False) -> dict[str, bool]:
    """Per-component match of two *normalised* queries (``strict_joins``: also compare join conditions)."""
    results = {
        "select": Counter(pred.select) == Counter(gold.select),
        "where": Counter(pred.where.units) == Counter(gold.where.units),
        "group(no having)": _group_names(pred) == _group_names(gold),
        "group": (not pred.group_by and not gold.group_by)
        or (
            bool(pred.group_by)
            and pred.group_by == gold.group_by
            and Counter(pred.having.units) == Counter(gold.having.units)
            and Counter(pred.having.connectors) == Counter(gold.having.connectors)
        ),
        "order": (not pred.order_by and not gold.order_by)
        or (
            bool(gold.order_by)
            and (pred.order_dir, pred.order_by) == (gold.order_dir, gold.order_by)
            and (pred.limit is None) == (gold.limit is None)
        ),
        "and/or": set(pred.where.connectors) == set(gold.where.connectors),
        "IUEN": _iuen(pred, gold, strict_joins),
        "keywords": get_keywords(pred) == get_keywords(gold),
        "from": _from(pred, gold, strict_joins),
    }
    return results


def _match(pred: SqlComponents, gold: SqlComponents, strict_joins: bool = False) -> bool:
    return all(compare_components(pred, gold, strict_joins).values())


def exact_match(pred_sql: str, gold: str | SqlComponents, schema: DbSchema, strict_joins: bool = False
                ) -> MatchResult:
    """Exact set match of a predicted SQL string against gold SQL (string or already parsed).
    ``strict_joins``: also compare join-condition column pairs (the official metric does not).

    A gold query that cannot be parsed raises ``SqlParseError``; a prediction that cannot be parsed scores 0
    with the parse error as ``reason`` (the official script compares it as an empty query).
    """
    gold_sql = normalize(gold if isinstance(gold, SqlComponents) else parse_sql(gold, schema), schema)
    try:
        pred = normalize(parse_sql(pred_sql, schema), schema)
    except SqlParseError as error:
        return MatchResult(0, {name: False for name in COMPONENTS}, f"prediction not parsable: {error}")
    except Exception as error:  # an evaluator must not crash on arbitrary model output
        reason = f"prediction not parsable ({type(error).__name__}: {error})"
        return MatchResult(0, {name: False for name in COMPONENTS}, reason)
    components = compare_components(pred, gold_sql, strict_joins)
    failed = [name for name, ok in components.items() if not ok]
    reason = f"mismatch in {', '.join(failed)}" if failed else None
    return MatchResult(int(not failed), components, reason)
