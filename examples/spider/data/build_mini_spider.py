"""Build the bundled mini-Spider dataset in Spider's on-disk layout.

Writes ``examples/spider/data/mini_spider/``::

    tables.json                          schemas introspected from the SQLite files (incl. primary/foreign keys)
    train_spider.json, dev.json          examples with Spider's fields: db_id, question, question_toks, query
    train_gold.sql, dev_gold.sql         official gold format: one ``SQL<TAB>db_id`` per line
    database/<db_id>/<db_id>.sqlite      the databases

The data is generated from fixed seeds, so the output is the same on every run. Every gold query is executed
(the build fails if one errors or returns no rows), classified with Spider's hardness rules, and the examples
are split about 75% / 25% into train / dev, stratified by hardness. Run from the repository root::

    python -m examples.spider.data.build_mini_spider [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
from collections import Counter
from pathlib import Path

from examples.spider.data.mini_questions import QUESTIONS
from examples.spider.data.mini_schemas import DATABASES
from examples.spider.spider_eval.exec_match import connect_readonly, run_query
from examples.spider.spider_eval.grammar import parse_sql, read_schema
from examples.spider.spider_eval.matching import HARDNESS_LEVELS, eval_hardness
from examples.spider.spider_eval.schema import introspect_sqlite

__all__ = ["DEFAULT_OUT", "build", "main"]

DEFAULT_OUT = Path(__file__).resolve().parent / "mini_spider"
DEV_EVERY = 4  # every 4th example of each hardness level goes to dev


def build_database(path: Path, ddl: str, rows: dict[str, list[tuple[object, ...]]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.executescript(ddl)
        for table, table_rows in rows.items():
            if table_rows:
                marks = ", ".join("?" * len(table_rows[0]))
                conn.executemany(f"INSERT INTO {table} VALUES ({marks})", table_rows)
        conn.commit()
        problems = conn.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise RuntimeError(f"{path}: foreign key violations {problems[:5]}")
    finally:
        conn.close()


def build(out: Path = DEFAULT_OUT) -> dict[str, Counter[str]]:
    """Write the dataset to ``out``; return the hardness distribution per split."""
    tables = []
    for db_id, (ddl, make_rows, seed) in DATABASES.items():
        db_path = out / "database" / db_id / f"{db_id}.sqlite"
        build_database(db_path, ddl, make_rows(random.Random(seed)))
        tables.append(introspect_sqlite(db_path, db_id))
    (out / "tables.json").write_text(json.dumps(tables, indent=2) + "\n", encoding="utf-8")

    examples = []
    for db_id, question, query in QUESTIONS:
        conn = connect_readonly(out / "database" / db_id / f"{db_id}.sqlite")
        try:
            result = run_query(conn, query)
        finally:
            conn.close()
        if not result:
            raise RuntimeError(f"gold query returns no rows on {db_id}: {query}")
        hardness = eval_hardness(parse_sql(query, read_schema(out / "database" / db_id / f"{db_id}.sqlite")))
        examples.append(
            {
                "db_id": db_id,
                "question": question,
                "question_toks": question.split(),
                "query": query,
                "hardness": hardness,
            }
        )

    seen: Counter[str] = Counter()
    splits: dict[str, list[dict[str, object]]] = {"train": [], "dev": []}
    for example in examples:
        level = str(example.pop("hardness"))
        seen[level] += 1
        split = "dev" if seen[level] % DEV_EVERY == 0 else "train"
        splits[split].append(example)
        example["_level"] = level
    distribution = {name: Counter(str(e.pop("_level")) for e in items) for name, items in splits.items()}

    for name, file_name in (("train", "train_spider.json"), ("dev", "dev.json")):
        (out / file_name).write_text(json.dumps(splits[name], indent=2) + "\n", encoding="utf-8")
        gold_lines = "".join(f"{e['query']}\t{e['db_id']}\n" for e in splits[name])
        (out / f"{name}_gold.sql").write_text(gold_lines, encoding="utf-8")
    return distribution


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the bundled mini-Spider dataset (deterministic).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    distribution = build(args.out)
    print(f"wrote {args.out}")
    print(f"{'split':8}" + "".join(f"{level:>8}" for level in (*HARDNESS_LEVELS, "total")))
    for name, counts in distribution.items():
        cells = [counts.get(level, 0) for level in HARDNESS_LEVELS]
        print(f"{name:8}" + "".join(f"{c:>8}" for c in (*cells, sum(cells))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
