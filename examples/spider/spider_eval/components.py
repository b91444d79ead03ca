"""Parse SQL into Spider's component structure (the ``sql`` dict of Spider's ``process_sql.py``).

The structure mirrors the official one:

* ``ColUnit``   -- ``(agg, column_id, distinct)``
* ``ValUnit``   -- ``(op, col_unit1, col_unit2)`` for ``a``, ``a - b`` ...
* ``CondUnit``  -- ``(negated, op, val_unit, val1, val2)``; values are literals, columns or nested SQL
* ``Condition`` -- the flat list of condition units and their ``and`` / ``or`` connectives
* ``SqlComponents`` -- select, from (tables and join conditions), where, group by, having,
  order by, limit, and the intersect / union / except continuation.

Parsing uses sqlglot's SQLite dialect. Table aliases are resolved to table names with the schema from
``tables.json``; everything is lower-cased. Spider's gold SQL often writes string literals in double quotes
(``name = "John"``): a double-quoted identifier that is not a column of a table in scope is read as a string,
which is also what SQLite itself does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Union

import sqlglot
from sqlglot import exp

from .schema import DbSchema, column_id, table_id

__all__ = [
    "ColUnit",
    "CondUnit",
    "Condition",
    "SqlComponents",
    "SqlParseError",
    "TableUnit",
    "ValUnit",
    "Value",
    "parse_sql",
]

AGG_FUNCS: dict[type[exp.Expression], str] = {
    exp.Max: "max",
    exp.Min: "min",
    exp.Count: "count",
    exp.Sum: "sum",
    exp.Avg: "avg",
}
UNIT_OPS: dict[type[exp.Expression], str] = {exp.Sub: "-", exp.Add: "+", exp.Mul: "*", exp.Div: "/"}
COMPARISONS: dict[type[exp.Expression], str] = {
    exp.EQ: "=",
    exp.GT: ">",
    exp.LT: "<",
    exp.GTE: ">=",
    exp.LTE: "<=",
    exp.NEQ: "!=",
    exp.Like: "like",
    exp.ILike: "like",
    exp.Is: "is",
}


class SqlParseError(ValueError):
    """The SQL cannot be parsed or refers to tables / columns missing from the schema."""


@dataclass(frozen=True)
class ColUnit:
    agg: str
    column: str
    distinct: bool = False


@dataclass(frozen=True)
class ValUnit:
    op: str
    left: ColUnit
    right: ColUnit | None = None


Value = Union["SqlComponents", ColUnit, str, tuple, None]


@dataclass(frozen=True)
class CondUnit:
    negated: bool
    op: str
    val_unit: ValUnit
    val1: Value = None
    val2: Value = None


@dataclass(frozen=True)
class Condition:
    units: tuple[CondUnit, ...] = ()
    connectors: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.units)


@dataclass(frozen=True)
class TableUnit:
    kind: str  # "table" or "sql"
    table: str | None = None
    sql: SqlComponents | None = None


@dataclass(frozen=True)
class SqlComponents:
    select: tuple[tuple[str, ValUnit], ...] = ()
    distinct: bool = False
    tables: tuple[TableUnit, ...] = ()
    join_conds: Condition = field(default_factory=Condition)
    where: Condition = field(default_factory=Condition)
    group_by: tuple[ColUnit, ...] = ()
    having: Condition = field(default_factory=Condition)
    order_dir: str | None = None
    order_by: tuple[ValUnit, ...] = ()
    limit: int | None = None
    intersect: SqlComponents | None = None
    union: SqlComponents | None = None
    except_: SqlComponents | None = None


@dataclass
class _Scope:
    """Tables visible to one SELECT: alias -> table name (or ``None`` for a derived table)."""

    aliases: dict[str, str | None]
    order: list[str]
    select_aliases: dict[str, exp.Expression]
    parent: _Scope | None = None
    derived: dict[str, set[str]] = field(default_factory=dict)  # derived-table alias -> output column names


class _Parser:
    def __init__(self, schema: DbSchema) -> None:
        self.schema = schema

    # -- statements -----------------------------------------------------------------------------
    def query(self, node: exp.Expression, parent: _Scope | None) -> SqlComponents:
        node = _unwrap(node)
        while isinstance(node, exp.Subquery) and not node.alias:
            node = _unwrap(node.this)
        if isinstance(node, exp.SetOperation):
            return self._set_operation(node, parent)
        if not isinstance(node, exp.Select):
            raise SqlParseError(f"expected a SELECT statement, got {node.key.upper()}")
        return self._select(node, parent)

    def _set_operation(self, node: exp.SetOperation, parent: _Scope | None) -> SqlComponents:
        # sqlglot nests set operations to the left; Spider chains them to the right, and a trailing
        # ORDER BY / LIMIT belongs to the last SELECT.
        parts, ops = _set_chain(node)
        last = _unwrap(parts[-1]).copy()
        if isinstance(last, exp.Select):
            for key in ("order", "limit"):
                if node.args.get(key) is not None:
                    last.set(key, node.args[key].copy())
        result = self.query(last, parent)
        for part, op in zip(reversed(parts[:-1]), reversed(ops), strict=True):
            key = {"intersect": "intersect", "union": "union", "except": "except_"}[op]
            result = replace(self.query(part, parent), **{key: result})
        return result

    def _select(self, node: exp.Select, parent: _Scope | None) -> SqlComponents:
        scope = _Scope(aliases={}, order=[], select_aliases={}, parent=parent)
        tables: list[TableUnit] = []
        sources: list[exp.Expression] = []
        from_ = node.args.get("from_") or node.args.get("from")
        if from_ is not None:
            sources.append(from_.this)
        join_nodes = node.args.get("joins") or []
        sources.extend(join.this for join in join_nodes)
        for source in sources:
            tables.append(self._table_unit(source, scope))
        for item in node.expressions:
            if isinstance(item, exp.Alias):
                scope.select_aliases[item.alias.lower()] = item.this
        join_cond = Condition()
        for join in join_nodes:
            on = join.args.get("on")
            if on is not None:
                join_cond = _concat(join_cond, self.condition(on, scope))
        select = tuple(self._select_item(item, scope) for item in node.expressions)
        where = node.args.get("where")
        group = node.args.get("group")
        having = node.args.get("having")
        order = node.args.get("order")
        order_dir: str | None = None
        order_by: tuple[ValUnit, ...] = ()
        if order is not None and order.expressions:
            order_by = tuple(self.val_unit(o.this, scope) for o in order.expressions)
            order_dir = "desc" if order.expressions[-1].args.get("desc") else "asc"
        return SqlComponents(
            select=select,
            distinct=bool(node.args.get("distinct")),
            tables=tuple(tables),
            join_conds=join_cond,
            where=self.condition(where.this, scope) if where is not None else Condition(),
            group_by=tuple(self.col_unit(g, scope) for g in group.expressions) if group is not None else (),
            having=self.condition(having.this, scope) if having is not None else Condition(),
            order_dir=order_dir,
            order_by=order_by,
            limit=_limit(node.args.get("limit")),
        )

    def _table_unit(self, source: exp.Expression, scope: _Scope) -> TableUnit:
        if isinstance(source, exp.Table):
            name = source.name.lower()
            if not self.schema.has_table(name):
                raise SqlParseError(f"unknown table {source.name!r} in database {self.schema.db_id!r}")
            alias = (source.alias or name).lower()
            scope.aliases[alias] = name
            scope.aliases.setdefault(name, name)
            scope.order.append(alias)
            return TableUnit("table", table=table_id(name))
        if isinstance(source, exp.Subquery):
            alias = (source.alias or f"__derived{len(scope.order)}").lower()
            scope.aliases[alias] = None
            scope.order.append(alias)
            inner = _unwrap(source.this)
            while isinstance(inner, exp.SetOperation):
                inner = _unwrap(inner.this)
            if isinstance(inner, exp.Select):
                scope.derived[alias] = {item.alias_or_name.lower() for item in inner.expressions}
            return TableUnit("sql", sql=self.query(source.this, scope.parent))
        raise SqlParseError(f"unsupported FROM item: {source.sql(dialect='sqlite')}")

    # -- expressions ----------------------------------------------------------------------------
    def _select_item(self, item: exp.Expression, scope: _Scope) -> tuple[str, ValUnit]:
        item = _unwrap(item.this if isinstance(item, exp.Alias) else item)
        agg = AGG_FUNCS.get(type(item))
        if agg is not None:
            inner = item.this
            distinct = isinstance(inner, exp.Distinct)
            if distinct:
                inner = inner.expressions[0]
            unit = self.val_unit(inner, scope)
            if distinct:
                unit = ValUnit(unit.op, ColUnit(unit.left.agg, unit.left.column, True), unit.right)
            return agg, unit
        return "none", self.val_unit(item, scope)

    def _deref(self, node: exp.Expression, scope: _Scope) -> exp.Expression:
        """Replace a reference to a select-list alias (``ORDER BY cnt``) by the aliased expression."""
        node = _unwrap(node)
        if isinstance(node, exp.Column) and not node.table and node.name.lower() in scope.select_aliases:
            name = node.name.lower()
            if not any(t is not None and self.schema.has_column(t, name) for t in scope.aliases.values()):
                return _unwrap(scope.select_aliases[name])
        return node

    def val_unit(self, node: exp.Expression, scope: _Scope) -> ValUnit:
        node = self._deref(node, scope)
        op = UNIT_OPS.get(type(node))
        if op is not None:
            return ValUnit(op, self.col_unit(node.this, scope), self.col_unit(node.expression, scope))
        return ValUnit("none", self.col_unit(node, scope))

    def col_unit(self, node: exp.Expression, scope: _Scope) -> ColUnit:
        node = self._deref(node, scope)
        agg = AGG_FUNCS.get(type(node))
        if agg is not None:
            inner = node.this
            distinct = isinstance(inner, exp.Distinct)
            if distinct:
                inner = inner.expressions[0]
            return ColUnit(agg, self._column_of(inner, scope), distinct)
        if isinstance(node, exp.Distinct):
            return ColUnit("none", self._column_of(node.expressions[0], scope), True)
        return ColUnit("none", self._column_of(node, scope))

    def _column_of(self, node: exp.Expression, scope: _Scope) -> str:
        node = _unwrap(node)
        if isinstance(node, exp.Star):
            return "__all__"
        if isinstance(node, exp.Column):
            resolved = self.resolve_column(node, scope)
            return "__value__" if resolved is None else resolved
        if isinstance(node, (exp.Literal, exp.Neg, exp.Null, exp.Boolean)):
            return "__value__"
        if isinstance(node, exp.Func) or isinstance(node, exp.Binary):
            # Not part of Spider's grammar (e.g. strftime, nested arithmetic): keep the function name and
            # its first column so that equal expressions still compare equal.
            columns = list(node.find_all(exp.Column))
            inner = self._column_of(columns[0], scope) if columns else "__value__"
            return f"{node.key}({inner})"
        raise SqlParseError(f"unsupported expression: {node.sql(dialect='sqlite')}")

    def resolve_column(self, node: exp.Column, scope: _Scope) -> str | None:
        """Column id of a column reference, or ``None`` when it is a double-quoted string literal."""
        name = node.name.lower()
        if isinstance(node.this, exp.Star):
            name = "*"
        qualifier = node.table.lower() if node.table else ""
        if qualifier:
            current: _Scope | None = scope
            while current is not None:
                if qualifier in current.aliases:
                    table = current.aliases[qualifier]
                    if table is None:
                        return f"__{qualifier}.{name}__"
                    if name == "*":
                        return "__all__"
                    if not self.schema.has_column(table, name):
                        raise SqlParseError(f"unknown column {node.sql(dialect='sqlite')!r} (table {table!r})")
                    return column_id(table, name)
                current = current.parent
            raise SqlParseError(f"unknown table or alias {node.table!r} in {node.sql(dialect='sqlite')!r}")
        current = scope
        while current is not None:
            for alias in current.order:
                table = current.aliases[alias]
                if table is not None and self.schema.has_column(table, name):
                    return column_id(table, name)
                if table is None and name in current.derived.get(alias, ()):
                    return f"__{alias}.{name}__"
            current = current.parent
        if node.this.args.get("quoted"):
            return None  # "double quoted" string literal
        raise SqlParseError(f"unknown column {node.sql(dialect='sqlite')!r} in database {self.schema.db_id!r}")

    def value(self, node: exp.Expression | None, scope: _Scope) -> Value:
        if node is None:
            return None
        node = _unwrap(node)
        if isinstance(node, (exp.Select, exp.SetOperation, exp.Subquery)):
            return self.query(node.this if isinstance(node, exp.Subquery) else node, scope)
        if isinstance(node, exp.Column):
            resolved = self.resolve_column(node, scope)
            if resolved is None:
                return node.name
            return ColUnit("none", resolved)
        if isinstance(node, exp.Literal):
            return node.this
        return node.sql(dialect="sqlite")

    def condition(self, node: exp.Expression, scope: _Scope) -> Condition:
        units: list[CondUnit] = []
        connectors: list[str] = []
        self._flatten(node, scope, units, connectors)
        return Condition(tuple(units), tuple(connectors))

    def _flatten(self, node: exp.Expression, scope: _Scope, units: list[CondUnit], connectors: list[str]) -> None:
        node = _unwrap(node)
        if isinstance(node, (exp.And, exp.Or)):
            self._flatten(node.this, scope, units, connectors)
            connectors.append("and" if isinstance(node, exp.And) else "or")
            self._flatten(node.expression, scope, units, connectors)
            return
        units.append(self._cond_unit(node, scope))

    def _cond_unit(self, node: exp.Expression, scope: _Scope) -> CondUnit:
        negated = False
        while isinstance(node, exp.Not):
            negated = not negated
            node = _unwrap(node.this)
        if isinstance(node, exp.Exists):
            return CondUnit(
                negated, "exists", ValUnit("none", ColUnit("none", "__all__")), self.value(node.this, scope)
            )
        if isinstance(node, exp.Escape):
            node = _unwrap(node.this)
        if isinstance(node, exp.Between):
            return CondUnit(
                negated,
                "between",
                self.val_unit(node.this, scope),
                self.value(node.args.get("low"), scope),
                self.value(node.args.get("high"), scope),
            )
        if isinstance(node, exp.In):
            query = node.args.get("query")
            if query is not None:
                val1: Value = self.value(query, scope)
            else:
                val1 = tuple(str(self.value(v, scope)) for v in node.expressions)
            return CondUnit(negated, "in", self.val_unit(node.this, scope), val1)
        op = COMPARISONS.get(type(node))
        if op is None:
            raise SqlParseError(f"unsupported condition: {node.sql(dialect='sqlite')}")
        return CondUnit(negated, op, self.val_unit(node.this, scope), self.value(node.expression, scope))


def _unwrap(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _has_modifiers(node: exp.Expression) -> bool:
    return bool(node.args.get("order") or node.args.get("limit"))


def _set_chain(node: exp.SetOperation) -> tuple[list[exp.Expression], list[str]]:
    """Flatten ``a UNION b EXCEPT c`` into its SELECTs and operators, left to right."""
    parts: list[exp.Expression] = []
    ops: list[str] = []

    def walk(current: exp.Expression, top: bool) -> None:
        current = _unwrap(current)
        if isinstance(current, exp.SetOperation) and (top or not _has_modifiers(current)):
            walk(current.this, False)
            ops.append(current.key.lower())
            walk(current.expression, False)
        else:
            parts.append(current)

    walk(node, True)
    return parts, ops


def _concat(first: Condition, second: Condition) -> Condition:
    if not first:
        return second
    if not second:
        return first
    return Condition(first.units + second.units, first.connectors + ("and",) + second.connectors)


def _limit(node: exp.Expression | None) -> int | None:
    if node is None:
        return None
    value = node.args.get("expression")
    try:
        return int(value.this) if isinstance(value, exp.Literal) else 0
    except ValueError:
        return 0


def parse_sql(sql: str, schema: DbSchema) -> SqlComponents:
    """Parse one SQL query into ``SqlComponents``; raise ``SqlParseError`` with a reason on failure."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise SqlParseError("empty query")
    try:
        statements = sqlglot.parse(text, read="sqlite")
    except sqlglot.errors.SqlglotError as error:
        raise SqlParseError(f"syntax error: {str(error).splitlines()[0]}") from error
    statements = [s for s in statements if s is not None]
    if len(statements) != 1:
        raise SqlParseError(f"expected exactly one statement, got {len(statements)}")
    try:
        return _Parser(schema).query(statements[0], None)
    except (AttributeError, IndexError, KeyError, TypeError) as error:
        raise SqlParseError(f"unsupported SQL ({type(error).__name__}: {error})") from error
