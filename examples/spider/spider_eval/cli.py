"""Command line for the Spider evaluator, compatible with the official ``evaluation.py`` arguments.

    python -m examples.spider.spider_eval --gold dev_gold.sql --pred pred.sql \\
        --db database --table tables.json --etype all

Gold file: one example per line, ``SQL<TAB>db_id``. Prediction file: one SQL per line, in the same order
(anything after a tab is ignored). Blank lines are skipped in both files, as in the official script.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .evaluate import ETYPES, EvaluationInputError, evaluate
from .exec_match import DEFAULT_TIMEOUT_S, GoldQueryError
from .schema import SchemaError

__all__ = ["InputFileError", "build_parser", "main", "read_gold_file", "read_pred_file"]


class InputFileError(ValueError):
    """A gold or prediction file is missing or malformed."""


def _lines(path: Path, kind: str) -> list[tuple[int, str]]:
    if not path.exists() or path.is_dir():
        raise InputFileError(f"{kind} file not found: {path}")
    text = path.read_text(encoding="utf-8")
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def read_gold_file(path: str | Path) -> tuple[list[tuple[str, str]], list[str]]:
    """Read ``SQL<TAB>db_id`` lines; return the pairs and a ``file:line`` label for each."""
    path = Path(path)
    pairs: list[tuple[str, str]] = []
    labels: list[str] = []
    for number, line in _lines(path, "gold"):
        sql, sep, db_id = line.rpartition("\t")
        if not sep or not sql.strip() or not db_id.strip():
            raise InputFileError(
                f"{path}:{number}: expected 'SQL<TAB>db_id', got {line[:80]!r}. "
                "Each gold line needs the query, one tab character, and the database id."
            )
        pairs.append((sql.strip(), db_id.strip()))
        labels.append(f"{path}:{number}")
    return pairs, labels


def read_pred_file(path: str | Path) -> list[str]:
    """Read one predicted SQL per non-blank line (a trailing ``<TAB>db_id`` is allowed and ignored)."""
    return [line.split("\t")[0].strip() for _, line in _lines(Path(path), "prediction")]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.spider.spider_eval",
        description=(
            "Evaluate text-to-SQL predictions on Spider (Yu et al., 2018), by hardness level (easy/medium/hard/extra).\n\n"
            "  exec   execution accuracy: gold and predicted queries run read-only on the database; results are\n"
            "         compared as multisets of rows (row order only when the gold query has ORDER BY).\n"
            "  match  exact set match: queries are split into components (select, where, group, order, and/or,\n"
            "         IUEN, keywords, from) compared as sets, with table aliases resolved and values ignored.\n"
            "  all    both."
        ),
        epilog=(
            "example (bundled mini-Spider, gold used as predictions; text after a tab is ignored in --pred):\n"
            "  D=examples/spider/data/mini_spider\n"
            "  python -m examples.spider.spider_eval --gold $D/dev_gold.sql --pred $D/dev_gold.sql \\\n"
            "      --db $D/database --table $D/tables.json --etype all"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--gold", required=True, type=Path, help="gold file, one 'SQL<TAB>db_id' per line")
    parser.add_argument("--pred", required=True, type=Path, help="prediction file, one SQL per line")
    parser.add_argument("--db", required=True, type=Path, help="database folder holding <db_id>/<db_id>.sqlite")
    parser.add_argument("--table", required=True, type=Path, help="Spider tables.json with the schemas")
    parser.add_argument("--etype", default="all", choices=ETYPES, help="metric: exec, match or all (default: all)")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help=f"seconds per query (default {DEFAULT_TIMEOUT_S:g})"
    )
    parser.add_argument("--details", type=Path, help="write per-example results (JSON) to this file")
    parser.add_argument("--verbose", action="store_true", help="print every example that is not fully correct")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        gold, labels = read_gold_file(args.gold)
        pred = read_pred_file(args.pred)
        if len(gold) != len(pred):
            raise InputFileError(
                f"{args.pred} has {len(pred)} non-blank lines but {args.gold} has {len(gold)} examples. "
                "Write exactly one prediction per gold example, in the same order "
                "(use a placeholder such as 'SELECT' for a missing prediction)."
            )
        result = evaluate(gold, pred, args.db, args.table, args.etype, timeout_s=args.timeout, labels=labels)
    except (InputFileError, EvaluationInputError, SchemaError, GoldQueryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.verbose:
        for example in result.examples:
            if example.exec_score == 0 or example.exact_score == 0:
                print(f"[{example.hardness}] {labels[example.index]}")
                print(f"  pred: {example.pred}\n  gold: {example.gold}")
                for reason in (example.exec_reason, example.exact_reason):
                    if reason:
                        print(f"  {reason}")
    print(result.format_table())
    if args.details:
        args.details.write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    return 0
