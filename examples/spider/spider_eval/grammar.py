"""Spider's SQL grammar exactly as the official evaluation reads it: tokenizer, parser and database schema.

This module re-implements ``process_sql.py`` of the official test-suite evaluation (test-suite-sql-eval, Apache-2.0;
Yu et al., 2018 and Zhong et al., 2020) with the same results, failures included, so that hardness levels and exact
set match agree with published Spider numbers. The differential tests (``tests/spider/test_spider_official_diff.py``)
compare ``parse_sql`` with the official ``get_sql`` on thousands of queries.

The parse is the official ``sql`` dict::

    col_unit  = (agg_id, column_id, is_distinct)          column_id: "__table.column__" or "__all__"
    val_unit  = (unit_op_id, col_unit, col_unit | None)
    cond_unit = (not_op, where_op_id, val_unit, val1, val2) values: float, '"string"', col_unit or a nested sql dict
    condition = [cond_unit, "and" | "or", cond_unit, ...]
    sql = {"from": {"table_units": [("table_unit", "__t__") | ("sql", sql)], "conds": condition},
           "select": (is_distinct, [(agg_id, val_unit), ...]), "where": condition, "groupBy": [col_unit, ...],
           "having": condition, "orderBy": [] | ("asc" | "desc", [val_unit, ...]), "limit": None | 1,
           "intersect": sql | None, "union": sql | None, "except": sql | None}

What the official grammar does not accept raises ``SqlParseError`` (for example ``INNER JOIN``, ``<>``, a column
alias ``AS name`` in SELECT, a FROM subquery with an alias); everything is lower-cased, table aliases are global to
the whole query, a LIMIT value is always read as 1, and tokens after the parsed query are ignored. Tokens come from
NLTK's ``word_tokenize(..., preserve_line=True)`` after every quoted string has been replaced by a placeholder (with
``'`` read as ``"``). The schema is read from the SQLite file (``sqlite_master`` and ``PRAGMA table_info``), not from
``tables.json``, as in the official script.

    schema = read_schema("examples/spider/data/mini_spider/database/store/store.sqlite")
    parse_sql("SELECT count(*) FROM customer", schema)["select"]     # (False, [(3, (0, (0, '__all__', False), None))])
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = [
    "AGG_OPS",
    "UNIT_OPS",
    "WHERE_OPS",
    "Schema",
    "SqlParseError",
    "empty_sql",
    "lenient_tokens",
    "parse_sql",
    "read_schema",
    "tokenize",
]

CLAUSE_KEYWORDS = ("select", "from", "where", "group", "order", "limit", "intersect", "union", "except")
JOIN_KEYWORDS = ("join", "on", "as")
WHERE_OPS = ("not", "between", "=", ">", "<", ">=", "<=", "!=", "in", "like", "is", "exists")
UNIT_OPS = ("none", "-", "+", "*", "/")
AGG_OPS = ("none", "max", "min", "count", "sum", "avg")
COND_OPS = ("and", "or")
SQL_OPS = ("intersect", "union", "except")
ORDER_OPS = ("desc", "asc")
_CLAUSE_END = (*CLAUSE_KEYWORDS, ")", ";")

Sql = dict[str, Any]
Toks = list[str]

class SqlParseError(ValueError):
    """The query is outside the grammar the official Spider evaluation accepts (it would fail there too)."""


def empty_sql() -> Sql:
    """What the official evaluation compares an unparsable prediction as (a fresh dict each call)."""
    return {"except": None, "from": {"conds": [], "table_units": []}, "groupBy": [], "having": [], "intersect": None,
            "limit": None, "orderBy": [], "select": (False, []), "union": None, "where": []}


@dataclass(frozen=True)
class Schema:
    """Lower-cased table -> column names of one database, and the official id map of tables and columns."""

    tables: dict[str, list[str]]
    id_map: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.id_map["*"] = "__all__"
        for table, columns in self.tables.items():
            for column in columns:
                self.id_map[f"{table}.{column}"] = f"__{table}.{column}__"
        for table in self.tables:
            self.id_map[table] = f"__{table}__"


_SCHEMAS: dict[tuple[str, int, int], Schema] = {}


def read_schema(db_path: str | Path) -> Schema:
    """The schema of a SQLite file as the official ``get_schema`` reads it (read-only; cached per file version)."""
    path = Path(db_path).resolve()
    info = path.stat()
    key = (str(path), info.st_size, info.st_mtime_ns)
    if key not in _SCHEMAS:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
        try:
            names = [str(row[0]).lower() for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            tables = {name: [str(col[1]).lower() for col in conn.execute(f"PRAGMA table_info(`{name}`)")]
                      for name in names}
        finally:
            conn.close()
        _SCHEMAS[key] = Schema(tables)
    return _SCHEMAS[key]


def tokenize(sql: str) -> Toks:
    """Official tokens: quoted strings kept whole (``'`` becomes ``"``), the rest lower-cased NLTK word tokens."""
    from nltk.tokenize import word_tokenize  # imported here: NLTK is slow to import and only this needs it

    text = str(sql).replace("'", '"')
    quotes = [index for index, char in enumerate(text) if char == '"']
    _check(len(quotes) % 2 == 0, "unbalanced quotes")
    values: dict[str, str] = {}
    for i in range(len(quotes) - 1, -1, -2):
        start, end = quotes[i - 1], quotes[i]
        key = f"__val_{start}_{end}__"
        values[key] = text[start:end + 1]
        text = text[:start] + key + text[end + 1:]
    toks = [values.get(word.lower(), word.lower()) for word in word_tokenize(text, preserve_line=True)]
    for eq in reversed([index for index, tok in enumerate(toks) if tok == "="]):
        before = toks[eq - 1]  # index -1 (the last token) when "=" comes first, as in the official code
        if before in ("!", ">", "<"):
            toks = toks[:eq - 1] + [before + "="] + toks[eq + 1:]
    return toks


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SqlParseError(message)


class _Parser:
    """One query: its tokens, the global alias map and the schema. Methods return (next index, parsed part)."""

    def __init__(self, toks: Toks, schema: Schema) -> None:
        self.toks, self.schema = toks, schema
        self.aliases: dict[str, str] = {toks[i + 1]: toks[i - 1] for i, tok in enumerate(toks) if tok == "as"}
        for table in schema.tables:
            _check(table not in self.aliases, f"alias {table!r} is also a table name")
            self.aliases[table] = table

    def col(self, toks: Toks, idx: int, default_tables: list[str] | None) -> tuple[int, str]:
        tok = toks[idx]
        if tok == "*":
            return idx + 1, self.schema.id_map[tok]
        if "." in tok:
            alias, column = tok.split(".")
            return idx + 1, self.schema.id_map[self.aliases[alias] + "." + column]
        _check(bool(default_tables), "a column outside any FROM clause")
        for alias in default_tables or ():
            table = self.aliases[alias]
            if tok in self.schema.tables[table]:
                return idx + 1, self.schema.id_map[f"{table}.{tok}"]
        raise SqlParseError(f"unknown column {tok!r}")

    def col_unit(self, toks: Toks, idx: int, default_tables: list[str] | None) -> tuple[int, tuple[Any, ...]]:
        block = toks[idx] == "("
        idx += block
        if toks[idx] in AGG_OPS:
            agg = AGG_OPS.index(toks[idx])
            idx += 1
            _check(idx < len(toks) and toks[idx] == "(", "aggregate without '('")
            distinct = toks[idx + 1] == "distinct"
            idx, column = self.col(toks, idx + 1 + distinct, default_tables)
            _check(idx < len(toks) and toks[idx] == ")", "aggregate without ')'")
            return idx + 1, (agg, column, distinct)  # an opening "(" before the aggregate stays open (official)
        distinct = toks[idx] == "distinct"
        idx, column = self.col(toks, idx + distinct, default_tables)
        if block:
            _check(toks[idx] == ")", "missing ')'")
            idx += 1
        return idx, (0, column, distinct)

    def val_unit(self, idx: int, default_tables: list[str] | None) -> tuple[int, tuple[Any, ...]]:
        toks = self.toks
        block = toks[idx] == "("
        idx, unit1 = self.col_unit(toks, idx + block, default_tables)
        op, unit2 = 0, None
        if idx < len(toks) and toks[idx] in UNIT_OPS:
            op = UNIT_OPS.index(toks[idx])
            idx, unit2 = self.col_unit(toks, idx + 1, default_tables)
        if block:
            _check(toks[idx] == ")", "missing ')'")
            idx += 1
        return idx, (op, unit1, unit2)

    def value(self, start: int, default_tables: list[str]) -> tuple[int, Any]:
        toks = self.toks
        block = toks[start] == "("
        idx = start + block
        if toks[idx] == "select":
            idx, value = self.sql(idx)
        elif '"' in toks[idx]:
            value, idx = toks[idx], idx + 1
        else:
            try:
                value, idx = float(toks[idx]), idx + 1
            except ValueError:
                end = idx
                while end < len(toks) and toks[end] not in (",", ")", "and", *CLAUSE_KEYWORDS, *JOIN_KEYWORDS):
                    end += 1
                _, value = self.col_unit(toks[start:end], 0, default_tables)  # from `start`, "(" included
                idx = end
        if block:
            _check(toks[idx] == ")", "missing ')'")
            idx += 1
        return idx, value

    def condition(self, idx: int, default_tables: list[str]) -> tuple[int, list[Any]]:
        toks, conds = self.toks, []
        while idx < len(toks):
            idx, val_unit = self.val_unit(idx, default_tables)
            negated = toks[idx] == "not"
            idx += negated
            _check(idx < len(toks) and toks[idx] in WHERE_OPS, "expected a comparison operator")
            op = WHERE_OPS.index(toks[idx])
            idx, val1 = self.value(idx + 1, default_tables)
            val2 = None
            if op == WHERE_OPS.index("between"):
                _check(toks[idx] == "and", "BETWEEN without AND")
                idx, val2 = self.value(idx + 1, default_tables)
            conds.append((negated, op, val_unit, val1, val2))
            if idx < len(toks) and (toks[idx] in _CLAUSE_END or toks[idx] in JOIN_KEYWORDS):
                break
            if idx < len(toks) and toks[idx] in COND_OPS:
                conds.append(toks[idx])
                idx += 1
        return idx, conds

    def select(self, idx: int, default_tables: list[str]) -> tuple[bool, list[Any]]:
        toks = self.toks
        _check(toks[idx] == "select", "'select' not found")
        idx += 1
        distinct = idx < len(toks) and toks[idx] == "distinct"
        idx += distinct
        units = []
        while idx < len(toks) and toks[idx] not in CLAUSE_KEYWORDS:
            agg = 0
            if toks[idx] in AGG_OPS:
                agg = AGG_OPS.index(toks[idx])
                idx += 1
            idx, val_unit = self.val_unit(idx, default_tables)
            units.append((agg, val_unit))
            if idx < len(toks) and toks[idx] == ",":
                idx += 1
        return distinct, units

    def from_(self, start: int) -> tuple[int, list[Any], list[Any], list[str]]:
        toks = self.toks
        _check("from" in toks[start:], "'from' not found")
        idx = toks.index("from", start) + 1
        default_tables: list[str] = []
        table_units: list[Any] = []
        conds: list[Any] = []
        while idx < len(toks):
            block = toks[idx] == "("
            idx += block
            if toks[idx] == "select":
                idx, sql = self.sql(idx)
                table_units.append(("sql", sql))
            else:
                if idx < len(toks) and toks[idx] == "join":
                    idx += 1
                table = self.aliases[toks[idx]]
                idx += 3 if idx + 1 < len(toks) and toks[idx + 1] == "as" else 1
                table_units.append(("table_unit", self.schema.id_map[table]))
                default_tables.append(table)
            if idx < len(toks) and toks[idx] == "on":
                idx, these = self.condition(idx + 1, default_tables)
                conds.extend(["and", *these] if conds else these)
            if block:
                _check(toks[idx] == ")", "missing ')'")
                idx += 1
            if idx < len(toks) and toks[idx] in _CLAUSE_END:
                break
        return idx, table_units, conds, default_tables

    def clause_units(self, idx: int, keyword: str, default_tables: list[str], val_units: bool
                     ) -> tuple[int, Any]:
        """GROUP BY (column units) or ORDER BY (value units and direction)."""
        toks = self.toks
        if idx >= len(toks) or toks[idx] != keyword:
            return idx, []
        _check(toks[idx + 1] == "by", f"{keyword} without 'by'")
        idx += 2
        units, direction = [], "asc"
        while idx < len(toks) and toks[idx] not in _CLAUSE_END:
            idx, unit = self.val_unit(idx, default_tables) if val_units else self.col_unit(toks, idx, default_tables)
            units.append(unit)
            if val_units and idx < len(toks) and toks[idx] in ORDER_OPS:
                direction = toks[idx]
                idx += 1
            if idx < len(toks) and toks[idx] == ",":
                idx += 1
            else:
                break
        return idx, (direction, units) if val_units else units

    def sql(self, start: int) -> tuple[int, Sql]:
        toks = self.toks
        block = toks[start] == "("
        idx = start + block
        from_end, table_units, conds, default_tables = self.from_(start)
        sql: Sql = {"from": {"table_units": table_units, "conds": conds}}
        sql["select"] = self.select(idx, default_tables)
        idx = from_end
        for key, keyword in (("where", "where"), ("groupBy", "group"), ("having", "having"), ("orderBy", "order")):
            if key in ("where", "having"):
                sql[key] = []
                if idx < len(toks) and toks[idx] == keyword:
                    idx, sql[key] = self.condition(idx + 1, default_tables)
            else:
                idx, sql[key] = self.clause_units(idx, keyword, default_tables, key == "orderBy")
        sql["limit"] = None
        if idx < len(toks) and toks[idx] == "limit":
            idx += 2
            _ = toks[idx - 1]  # the official code reads the value (IndexError when missing), then always uses 1
            sql["limit"] = 1
        idx = self.skip_semicolons(idx)
        if block:
            _check(toks[idx] == ")", "missing ')'")
            idx += 1
        idx = self.skip_semicolons(idx)
        sql.update({op: None for op in SQL_OPS})
        if idx < len(toks) and toks[idx] in SQL_OPS:
            op = toks[idx]
            idx, sql[op] = self.sql(idx + 1)
        return idx, sql

    def skip_semicolons(self, idx: int) -> int:
        while idx < len(self.toks) and self.toks[idx] == ";":
            idx += 1
        return idx


def lenient_tokens(toks: Toks, schema: Schema) -> Toks:
    """Opt-in, changes the metric: ``INNER JOIN`` read as ``JOIN``, ``<>`` as ``!=``, and a SELECT-list alias
    (``count(*) AS n ... ORDER BY n``) replaced by its expression, so that such queries parse instead of failing."""
    out: Toks = []
    for tok in toks:
        if out and out[-1] == "inner" and tok == "join":
            out[-1] = "join"
        elif out and out[-1] == "<" and tok == ">":
            out[-1] = "!="
        else:
            out.append(tok)
    known = set(schema.tables) | {column for columns in schema.tables.values() for column in columns}
    result: Toks = []
    aliases: dict[str, Toks] = {}
    in_select: list[bool] = [False]
    item_start: list[int] = [0]
    i = 0
    while i < len(out):
        tok = out[i]
        if (tok == "as" and in_select[-1] and i + 1 < len(out) and out[i + 1].isidentifier()
                and out[i + 1] not in known and out[i + 1] not in aliases):
            aliases[out[i + 1]] = result[item_start[-1]:]
            i += 2
            continue
        result.extend(aliases.get(tok, [tok]) if not (result and result[-1] == "as") else [tok])
        if tok == "(":
            in_select.append(False)
            item_start.append(len(result))
        elif tok == ")" and len(in_select) > 1:
            in_select.pop()
            item_start.pop()
        elif tok == "select" or (tok == "," and in_select[-1]) or (tok == "distinct" and in_select[-1]):
            in_select[-1], item_start[-1] = True, len(result)
        elif tok == "from":
            in_select[-1] = False
        i += 1
    return result


def parse_sql(sql: str, schema: Schema, lenient: bool = False) -> Sql:
    """Parse one query as the official ``get_sql`` does; raise ``SqlParseError`` where it fails.
    ``lenient=True`` (opt-in, changes the metric) first applies ``lenient_tokens``."""
    try:
        toks = tokenize(sql)
        if lenient:
            toks = lenient_tokens(toks, schema)
        return _Parser(toks, schema).sql(0)[1]
    except SqlParseError:
        raise
    except Exception as error:  # the official evaluation catches everything here too (a bare `except:`)
        raise SqlParseError(f"outside Spider's grammar ({type(error).__name__}: {error})") from error
