"""Gold / prediction pairs made by program from the bundled mini-Spider gold queries, for the differential tests.

``make_pairs(seed)`` returns ``Pair(gold, db_id, pred, kind)`` tuples: every bundled gold query and many mutated golds
(DISTINCT, case, quotes, aliases dropped, ORDER BY / LIMIT changed, wrapped in FROM / WHERE / HAVING subqueries, set
operations added ...) each paired with many mutated predictions covering the constructs Spider uses: joins with and
without aliases, nested queries in WHERE / FROM / HAVING, INTERSECT / UNION / EXCEPT, GROUP BY / HAVING, ORDER BY /
LIMIT, DISTINCT everywhere (aggregates too), aggregates, LIKE / BETWEEN / IN / NOT, both quote styles, case changes,
SQL outside Spider's grammar, syntax errors, the word "value", and other queries of the same database. The golds that
the official code cannot parse or run are dropped by the caller (``keep_gold``); empty predictions are made
separately. Deterministic for a given seed.

    cd tests/spider && python -c "from spider_mutations import make_pairs; print(len(make_pairs(0)))"
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

__all__ = ["GOLD_MUTATIONS", "MINI", "PRED_MUTATIONS", "Pair", "bundled_golds", "make_pairs"]

MINI = Path(__file__).resolve().parents[2] / "examples" / "spider" / "data" / "mini_spider"


class Pair(NamedTuple):
    gold: str
    db_id: str
    pred: str
    kind: str


Mutation = Callable[[str, random.Random, "Context"], str | None]


class Context(NamedTuple):
    columns: dict[str, list[str]]  # table -> columns (original case) of the pair's database
    others: list[str]  # other gold queries of the same database


def bundled_golds() -> list[tuple[str, str]]:
    pairs = []
    for name in ("train_gold.sql", "dev_gold.sql"):
        for line in (MINI / name).read_text().splitlines():
            sql, db_id = line.split("\t")
            pairs.append((sql, db_id))
    return pairs


def _schema_columns() -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for entry in json.loads((MINI / "tables.json").read_text()):
        tables: dict[str, list[str]] = {t: [] for t in entry["table_names_original"]}
        for t_index, column in entry["column_names_original"]:
            if t_index >= 0:
                tables[entry["table_names_original"][t_index]].append(column)
        out[entry["db_id"]] = tables
    return out


def _sub(pattern: str, repl: str | Callable[[re.Match[str]], str], count: int = 0, flags: int = re.IGNORECASE
         ) -> Mutation:
    def mutate(sql: str, rng: random.Random, ctx: Context) -> str | None:
        out = re.sub(pattern, repl, sql, count=count, flags=flags)
        return out if out != sql else None
    return mutate


def _first_table(sql: str, ctx: Context) -> str | None:
    match = re.search(r"\bFROM\s+(\w+)", sql, re.IGNORECASE)
    if not match:
        return None
    return next((t for t in ctx.columns if t.lower() == match.group(1).lower()), None)


def _a_column(sql: str, rng: random.Random, ctx: Context) -> tuple[str, str] | None:
    table = _first_table(sql, ctx)
    return (table, rng.choice(ctx.columns[table])) if table else None


def _outside_quotes(transform: Callable[[str], str]) -> Mutation:
    def mutate(sql: str, rng: random.Random, ctx: Context) -> str | None:
        parts = re.split(r"""('[^']*'|"[^"]*")""", sql)
        out = "".join(part if i % 2 else transform(part) for i, part in enumerate(parts))
        return out if out != sql else None
    return mutate


def _random_case(sql: str, rng: random.Random, ctx: Context) -> str | None:
    return _outside_quotes(lambda s: "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in s))(sql, rng, ctx)


def _swap_quotes(sql: str, rng: random.Random, ctx: Context) -> str | None:
    out = re.sub(r"""'([^']*)'|"([^"]*)\"""", lambda m: f'"{m.group(1)}"' if m.group(1) is not None
                 else f"'{m.group(2)}'", sql)
    return out if out != sql else None


def _drop_aliases(sql: str, rng: random.Random, ctx: Context) -> str | None:
    aliases = dict((alias, table) for table, alias in re.findall(r"(\w+)\s+AS\s+(T\d)\b", sql, re.IGNORECASE))
    if not aliases or len(set(aliases.values())) != len(aliases):
        return None
    out = re.sub(r"(\w+)\s+AS\s+(T\d)\b", r"\1", sql, flags=re.IGNORECASE)
    return re.sub(r"\b(T\d)\.", lambda m: aliases.get(m.group(1), m.group(1)) + ".", out)


def _add_aliases(sql: str, rng: random.Random, ctx: Context) -> str | None:
    table = _first_table(sql, ctx)
    if not table or re.search(r"\bJOIN\b|\bAS\b", sql, re.IGNORECASE):
        return None
    return re.sub(rf"\bFROM\s+{table}\b", f"FROM {table} AS X", sql, count=1, flags=re.IGNORECASE)


def _split_select(sql: str) -> tuple[str, list[str], str] | None:
    match = re.match(r"(?is)(SELECT\s+(?:DISTINCT\s+)?)(.*?)(\s+FROM\s.*)", sql)
    if not match or "(" in match.group(2) and "select" in match.group(2).lower():
        return None
    items, depth, current = [], 0, ""
    for char in match.group(2):
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += char
    items.append(current.strip())
    return match.group(1), items, match.group(3)


def _reorder_select(sql: str, rng: random.Random, ctx: Context) -> str | None:
    split = _split_select(sql)
    if not split or len(split[1]) < 2:
        return None
    head, items, tail = split
    rng.shuffle(items)
    return head + " ,  ".join(items) + tail


def _drop_select_item(sql: str, rng: random.Random, ctx: Context) -> str | None:
    split = _split_select(sql)
    if not split or len(split[1]) < 2:
        return None
    head, items, tail = split
    items.pop(rng.randrange(len(items)))
    return head + " , ".join(items) + tail


def _add_select_item(sql: str, rng: random.Random, ctx: Context) -> str | None:
    split, column = _split_select(sql), _a_column(sql, rng, ctx)
    if not split or not column or re.search(r"\bJOIN\b", sql, re.IGNORECASE):
        return None
    head, items, tail = split
    extra = rng.choice([column[1], f"max({column[1]})", f"{column[1]} - {column[1]}"])
    return head + " , ".join([*items, extra]) + tail


def _alias_select_item(sql: str, rng: random.Random, ctx: Context) -> str | None:
    split = _split_select(sql)
    if not split:
        return None
    head, items, tail = split
    items[0] = f"{items[0]} AS c0"
    return head + " ,  ".join(items) + tail


def _distinct_in_agg(sql: str, rng: random.Random, ctx: Context) -> str | None:
    column = _a_column(sql, rng, ctx)
    if column is None:
        return None
    if "count(*)" in sql.lower():
        return re.sub(r"count\(\*\)", f"count(DISTINCT {column[1]})", sql, count=1, flags=re.IGNORECASE)
    return _sub(r"\b(max|min|avg|sum|count)\(\s*", r"\1(DISTINCT ", count=1)(sql, rng, ctx)


def _where_reorder(sql: str, rng: random.Random, ctx: Context) -> str | None:
    match = re.search(r"(?i)\bWHERE\s+(.*?)\s+AND\s+(.*?)(\s+(?:GROUP|ORDER|LIMIT|INTERSECT|UNION|EXCEPT)\b.*|$)", sql)
    if not match or "between" in match.group(1).lower() or "(" in match.group(0):
        return None
    return sql[:match.start(1)] + f"{match.group(2)} AND {match.group(1)}" + match.group(3)


def _cut_at(pattern: str) -> Mutation:
    def mutate(sql: str, rng: random.Random, ctx: Context) -> str | None:
        match = re.search(pattern, sql, re.IGNORECASE)
        return sql[:match.start()].rstrip() if match else None
    return mutate


def _append(text: Callable[[str, random.Random, Context], str | None]) -> Mutation:
    def mutate(sql: str, rng: random.Random, ctx: Context) -> str | None:
        extra = text(sql, rng, ctx)
        return f"{sql} {extra}" if extra else None
    return mutate


def _set_op_with_other(sql: str, rng: random.Random, ctx: Context) -> str | None:
    if re.search(r"\b(INTERSECT|UNION|EXCEPT|ORDER|LIMIT)\b", sql, re.IGNORECASE):
        return None
    split, other = _split_select(sql), rng.choice(ctx.others)
    other_split = _split_select(other)
    if not split or not other_split or len(split[1]) != len(other_split[1]):
        return f"{sql} {rng.choice(['UNION', 'INTERSECT', 'EXCEPT'])} {sql}"
    return f"{sql} {rng.choice(['UNION', 'INTERSECT', 'EXCEPT'])} {other}"


def _nested_where(sql: str, rng: random.Random, ctx: Context) -> str | None:
    match = re.search(r"(?i)\b(\w+)\s*(>=|<=|>|<|=)\s*(\d+(?:\.\d+)?)", sql)
    table = _first_table(sql, ctx)
    if not match or not table or "." in match.group(1) or match.group(1) not in ctx.columns[table]:
        return None
    agg = rng.choice(["avg", "max", "min"])
    return sql[:match.start(3)] + f"(SELECT {agg}({match.group(1)}) FROM {table})" + sql[match.end(3):]


def _nested_in(sql: str, rng: random.Random, ctx: Context) -> str | None:
    column, table = _a_column(sql, rng, ctx), _first_table(sql, ctx)
    if column is None or table is None or re.search(r"\bJOIN|\bWHERE\b|\bGROUP\b", sql, re.IGNORECASE):
        return None
    negation = rng.choice(["", "NOT "])
    return re.sub(rf"(\bFROM\s+{table})\b", rf"\1 WHERE {column[1]} {negation}IN (SELECT {column[1]} FROM {table} "
                  "LIMIT 3)", sql, count=1, flags=re.IGNORECASE)


def _nested_having(sql: str, rng: random.Random, ctx: Context) -> str | None:
    table = _first_table(sql, ctx)
    if not table or not re.search(r"\bGROUP BY\b", sql, re.IGNORECASE) or re.search(r"\bHAVING\b", sql, re.I):
        return None
    return re.sub(r"(\bGROUP BY\s+[\w.]+)", rf"\1 HAVING count(*) < (SELECT count(*) FROM {table})", sql,
                  count=1, flags=re.IGNORECASE)


def _tables_in_from(sql: str, rng: random.Random, ctx: Context) -> str | None:
    return rng.choice([f"SELECT count(*) FROM ({sql})", f"SELECT * FROM ({sql}) AS sub",
                       f"SELECT count(*) FROM ({sql}) ({rng.choice(ctx.others)})"])


def _second_from_subquery(sql: str, rng: random.Random, ctx: Context) -> str | None:
    """Two different FROM subqueries (not SQLite, but inside the official grammar), on which the official exact
    match raises TypeError when everything else matches."""
    return f"{sql} ({rng.choice(ctx.others)})" if re.fullmatch(r"SELECT count\(\*\) FROM \(.*\)", sql) else None


def _syntax_error(sql: str, rng: random.Random, ctx: Context) -> str | None:
    choice = rng.randrange(6)
    if choice == 0:
        words = sql.split()
        return " ".join(words[:rng.randrange(1, len(words))])
    if choice == 1:
        return sql.replace(")", "", 1) if ")" in sql else sql + ")"
    if choice == 2:
        return re.sub(r"(?i)\bSELECT\b", "SELEC", sql, count=1)
    if choice == 3:
        return re.sub(r"(?i)\bFROM\s+(\w+)", r"FROM \1 WHERE no_such_column = 1", sql, count=1)
    if choice == 4:
        return sql + " '"
    return sql.replace(" ", "", 3)


def _other_query(sql: str, rng: random.Random, ctx: Context) -> str | None:
    return rng.choice(ctx.others)


def _values(sql: str, rng: random.Random, ctx: Context) -> str | None:
    out = re.sub(r"\b(\d+)\b(?![.\w])", lambda m: str(int(m.group(1)) + rng.choice([-1, 1, 10])), sql)
    out = re.sub(r"'([^']*)'", lambda m: "'" + m.group(1)[::-1] + "'", out)
    return out if out != sql else None


GOLD_MUTATIONS: dict[str, Mutation] = {
    "distinct": _sub(r"^SELECT\b(?!\s+DISTINCT)", "SELECT DISTINCT", count=1),
    "distinct in aggregate": _distinct_in_agg,
    "lower case": lambda sql, rng, ctx: sql.lower(),
    "quotes swapped": _swap_quotes,
    "aliases dropped": _drop_aliases,
    "order by added": _append(lambda sql, rng, ctx: None if re.search(r"ORDER|LIMIT|INTERSECT|UNION|EXCEPT", sql, re.I)
                              else "ORDER BY " + (_split_select(sql) or ("", ["1"], ""))[1][0]),
    "limit changed": _sub(r"\bLIMIT\s+(\d+)", lambda m: f"LIMIT {int(m.group(1)) + 2}"),
    "desc/asc": _sub(r"\b(DESC|ASC)\b", lambda m: "ASC" if m.group(1).upper() == "DESC" else "DESC"),
    "nested in WHERE": _nested_where,
    "nested IN": _nested_in,
    "nested in HAVING": _nested_having,
    "FROM subquery": lambda sql, rng, ctx: f"SELECT count(*) FROM ({sql})",
    "set operation": _set_op_with_other,
    "like": _sub(r"=\s*'([^']*)'", r"LIKE '%\1%'", count=1),
    "or": _sub(r"\bAND\b(?![^()]*\bBETWEEN)", "OR", count=1),
}

PRED_MUTATIONS: dict[str, Mutation] = {
    **GOLD_MUTATIONS,
    "identity": lambda sql, rng, ctx: sql,
    "upper case": lambda sql, rng, ctx: sql.upper(),
    "random case": _random_case,
    "alias added": _add_aliases,
    "aliases renamed": _sub(r"\bT(\d)\b", r"alias\1"),
    "select reordered": _reorder_select,
    "select item dropped": _drop_select_item,
    "select item added": _add_select_item,
    "select alias AS": _alias_select_item,
    "distinct removed": _sub(r"\bDISTINCT\s+", ""),
    "aggregate swapped": _sub(r"\b(max|min|avg|sum)\(", lambda m: {"max": "min(", "min": "max(", "avg": "sum(",
                                                                    "sum": "avg("}[m.group(1).lower()], count=1),
    "count to sum": _sub(r"count\(\*\)", "sum(1)", count=1),
    "comparison flipped": _sub(r"(>=|<=|>|<)", lambda m: {">": "<", "<": ">", ">=": "<=", "<=": ">="}[m.group(1)],
                               count=1),
    "= to !=": _sub(r"(?<![<>!])=", "!=", count=1),
    "= to <>": _sub(r"(?<![<>!])=", "<>", count=1),
    "> to > =": _sub(r">(?!=)", "> =", count=1),
    "and/or swapped": _sub(r"\b(AND|OR)\b(?![^()]*\bBETWEEN)", lambda m: "OR" if m.group(1).upper() == "AND"
                           else "AND", count=1),
    "not added": _sub(r"\b(IN|LIKE|BETWEEN)\b", r"NOT \1", count=1),
    "not removed": _sub(r"\bNOT\s+", ""),
    "like to =": _sub(r"\bLIKE\b", "=", count=1),
    "between": _sub(r"(\w+)\s*>\s*(\d+)", lambda m: f"{m.group(1)} BETWEEN {m.group(2)} AND {int(m.group(2)) * 2}",
                    count=1),
    "in list": _sub(r"=\s*('[^']*')", r"IN (\1, 'x')", count=1),
    "set op swapped": _sub(r"\b(INTERSECT|UNION|EXCEPT)\b", lambda m: {"INTERSECT": "UNION", "UNION": "EXCEPT",
                                                                       "EXCEPT": "INTERSECT"}[m.group(1).upper()]),
    "set op dropped": _cut_at(r"\s(INTERSECT|UNION|EXCEPT)\s"),
    "order by dropped": _cut_at(r"\sORDER\s+BY\s"),
    "limit dropped": _sub(r"\s+LIMIT\s+\d+", ""),
    "group by dropped": _sub(r"\s+GROUP\s+BY\s+[\w.]+", "", count=1),
    "having dropped": _sub(r"\s+HAVING\s+.*?(?=\s+ORDER\b|$)", "", count=1),
    "where dropped": _sub(r"\s+WHERE\s+.*?(?=\s+(GROUP|ORDER|LIMIT|INTERSECT|UNION|EXCEPT)\b|$)", "", count=1),
    "where reordered": _where_reorder,
    "join to INNER JOIN": _sub(r"\bJOIN\b", "INNER JOIN", count=1),
    "join to LEFT JOIN": _sub(r"\bJOIN\b", "LEFT JOIN", count=1),
    "join condition flipped": _sub(r"ON\s+(T\d\.\w+)\s*=\s*(T\d\.\w+)", r"ON \2 = \1", count=1),
    "join column changed": _sub(r"ON\s+(T\d)\.(\w+)\s*=", r"ON \1.rowid =", count=1),
    "FROM subqueries": _tables_in_from,
    "second FROM subquery": _second_from_subquery,
    "value word": _sub(r"'([^']*)'", "'value'", count=1),
    "current year": _sub(r"\b20(1\d|2\d)\b", "YEAR(CURDATE())", count=1),
    "is not null": _append(lambda sql, rng, ctx: None if re.search(r"\b(GROUP|ORDER|LIMIT|INTERSECT|UNION|EXCEPT|"
                                                                    r"WHERE)\b", sql, re.I)
                           else f"WHERE {(_a_column(sql, rng, ctx) or ('', 'x'))[1]} IS NOT NULL"),
    "semicolon": lambda sql, rng, ctx: sql + " ;",
    "double spaces": lambda sql, rng, ctx: sql.replace(" ", "  "),
    "values changed": _values,
    "syntax error": _syntax_error,
    "other query": _other_query,
}


def make_pairs(seed: int = 0, gold_variants: int = 3, preds_per_gold: int = 14,
               keep_gold: Callable[[str, str], bool] = lambda sql, db_id: True) -> list[Pair]:
    """Pairs over the bundled golds and ``gold_variants`` mutated golds each (those ``keep_gold`` accepts), with
    every gold paired with ``preds_per_gold`` predictions (mutations, some applied twice)."""
    rng = random.Random(seed)
    columns, originals = _schema_columns(), bundled_golds()
    by_db: dict[str, list[str]] = {}
    for sql, db_id in originals:
        by_db.setdefault(db_id, []).append(sql)
    golds: list[tuple[str, str]] = []
    for sql, db_id in originals:
        ctx = Context(columns[db_id], by_db[db_id])
        golds.append((sql, db_id))
        accepted = 0
        for name in rng.sample(sorted(GOLD_MUTATIONS), k=len(GOLD_MUTATIONS)):
            variant = GOLD_MUTATIONS[name](sql, rng, ctx) if accepted < gold_variants else None
            if variant and variant != sql and keep_gold(variant, db_id):
                golds.append((variant, db_id))
                accepted += 1
    pairs: list[Pair] = []
    names = sorted(PRED_MUTATIONS)
    for sql, db_id in golds:
        ctx = Context(columns[db_id], by_db[db_id])
        pairs.append(Pair(sql, db_id, sql, "identity"))
        made = 0
        for name in rng.sample(names, k=len(names)):
            pred = PRED_MUTATIONS[name](sql, rng, ctx)
            kind = name
            if pred and rng.random() < 0.25:
                second = rng.choice(names)
                pred, kind = PRED_MUTATIONS[second](pred, rng, ctx) or pred, f"{name} + {second}"
            if pred and pred.strip():
                pairs.append(Pair(sql, db_id, " ".join(pred.split("\n")), kind))
                made += 1
            if made >= preds_per_gold:
                break
    return pairs
