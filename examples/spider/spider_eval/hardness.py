"""Spider's difficulty levels (easy / medium / hard / extra) for a gold query.

The rules are those of the official ``evaluation.py`` (Yu et al., 2018):

* ``count_component1`` -- one each for WHERE, GROUP BY, ORDER BY, LIMIT; one per joined table beyond the first;
  one per ``OR`` and one per ``LIKE`` in the join / WHERE / HAVING conditions.
* ``count_component2`` -- the number of nested queries: subqueries used as condition values plus the
  INTERSECT / UNION / EXCEPT continuation (derived tables in FROM are *not* counted).
* ``count_others`` -- one each for: more than one aggregation, more than one select column, more than one
  WHERE condition, more than one GROUP BY column.

The aggregation count copies the official script literally, quirks included, so that levels agree with
published numbers: in WHERE and HAVING it counts negated conditions (``NOT IN`` ...) rather than aggregates,
and in HAVING it also counts every ``AND`` / ``OR`` connective.

    easy   : c1 <= 1 and others == 0 and c2 == 0
    medium : (others <= 2 and c1 <= 1 and c2 == 0) or (c1 <= 2 and others < 2 and c2 == 0)
    hard   : (others > 2 and c1 <= 2 and c2 == 0) or (2 < c1 <= 3 and others <= 2 and c2 == 0)
             or (c1 <= 1 and others == 0 and c2 <= 1)
    extra  : everything else
"""

from __future__ import annotations

from .components import Condition, CondUnit, SqlComponents

__all__ = [
    "HARDNESS_LEVELS",
    "count_component1",
    "count_component2",
    "count_others",
    "eval_hardness",
    "nested_queries",
]

HARDNESS_LEVELS: tuple[str, ...] = ("easy", "medium", "hard", "extra")


def _cond_units(sql: SqlComponents) -> list[CondUnit]:
    return [*sql.join_conds.units, *sql.where.units, *sql.having.units]


def _connectors(sql: SqlComponents) -> list[str]:
    return [*sql.join_conds.connectors, *sql.where.connectors, *sql.having.connectors]


def nested_queries(sql: SqlComponents) -> list[SqlComponents]:
    """Subqueries in condition values plus the set-operation continuation (``get_nestedSQL``)."""
    nested: list[SqlComponents] = []
    for unit in _cond_units(sql):
        nested.extend(value for value in (unit.val1, unit.val2) if isinstance(value, SqlComponents))
    nested.extend(part for part in (sql.intersect, sql.except_, sql.union) if part is not None)
    return nested


def count_component1(sql: SqlComponents) -> int:
    count = sum(bool(part) for part in (sql.where, sql.group_by, sql.order_by)) + (sql.limit is not None)
    if sql.tables:
        count += len(sql.tables) - 1
    count += _connectors(sql).count("or")
    count += sum(1 for unit in _cond_units(sql) if unit.op == "like")
    return count


def count_component2(sql: SqlComponents) -> int:
    return len(nested_queries(sql))


def _having_quirk_count(having: Condition) -> int:
    # Official: count_agg(sql['having']) applies ``unit[0] != 0`` to the raw list, which is true for
    # negated condition units and for every 'and' / 'or' string.
    return sum(1 for unit in having.units if unit.negated) + len(having.connectors)


def count_others(sql: SqlComponents) -> int:
    agg_count = sum(1 for agg, _ in sql.select if agg != "none")
    agg_count += sum(1 for unit in sql.where.units if unit.negated)  # official quirk: not_op, not agg
    agg_count += sum(1 for unit in sql.group_by if unit.agg != "none")
    for val_unit in sql.order_by:
        agg_count += sum(1 for col in (val_unit.left, val_unit.right) if col is not None and col.agg != "none")
    agg_count += _having_quirk_count(sql.having)
    count = int(agg_count > 1)
    count += int(len(sql.select) > 1)
    count += int(len(sql.where.units) > 1)
    count += int(len(sql.group_by) > 1)
    return count


def eval_hardness(sql: SqlComponents) -> str:
    """Return ``"easy"``, ``"medium"``, ``"hard"`` or ``"extra"`` for a parsed gold query."""
    c1 = count_component1(sql)
    c2 = count_component2(sql)
    others = count_others(sql)
    if c1 <= 1 and others == 0 and c2 == 0:
        return "easy"
    if (others <= 2 and c1 <= 1 and c2 == 0) or (c1 <= 2 and others < 2 and c2 == 0):
        return "medium"
    if (
        (others > 2 and c1 <= 2 and c2 == 0)
        or (2 < c1 <= 3 and others <= 2 and c2 == 0)
        or (c1 <= 1 and others == 0 and c2 <= 1)
    ):
        return "hard"
    return "extra"
