"""Command line for the Spider evaluator: the official ``evaluation.py`` arguments, the official table.

    python -m examples.spider.spider_eval --gold dev_gold.sql --pred pred.sql \\
        --db database --table tables.json --etype all

Gold file: one example per line, ``SQL<TAB>db_id`` (blank lines are skipped). Prediction file: one SQL per line in
the same order, anything after a tab ignored; a blank line is an empty prediction (scored 0 and named in
``--details``), and blank lines after the last prediction are ignored. Errors in the inputs print a message naming
the file, line and fix, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .evaluate import ETYPES, UNOFFICIAL_OPTIONS, EvaluationInputError, evaluate
from .exec_match import DEFAULT_TIMEOUT_S, GoldQueryError
from .schema import SchemaError

__all__ = ["InputFileError", "build_parser", "main", "read_gold_file", "read_pred_file"]


class InputFileError(ValueError):
    """A gold or prediction file is missing or malformed."""


def _lines(path: Path, kind: str) -> list[str]:
    """The file's lines as Python's ``readlines`` gives them (universal newlines), without the line ends."""
    if not path.is_file():
        raise InputFileError(f"{kind} file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as error:
        raise InputFileError(f"{kind} file {path} is not UTF-8 text (byte {error.start}: {error.reason}); "
                             "save it as UTF-8") from error
    return lines[:-1] if lines[-1] == "" else lines


def read_gold_file(path: str | Path) -> tuple[list[tuple[str, str]], list[str]]:
    """Read ``SQL<TAB>db_id`` lines (blank lines skipped); return the pairs and a ``file:line`` label for each."""
    path = Path(path)
    pairs: list[tuple[str, str]] = []
    labels: list[str] = []
    for number, line in enumerate(_lines(path, "gold"), start=1):
        if not line.strip():
            continue
        fields = line.strip().split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise InputFileError(f"{path}:{number}: expected 'SQL<TAB>db_id', got {line[:80]!r}. "
                                 "Each gold line needs the query, one tab character, and the database id.")
        pairs.append((fields[0], fields[1].strip()))
        labels.append(f"{path}:{number}")
    return pairs, labels


def read_pred_file(path: str | Path, expected: int | None = None) -> list[str]:
    """One prediction per line (the text before the first tab); a blank line is an empty prediction ``""``.
    With ``expected``, blank lines beyond that count at the end of the file are dropped."""
    preds = [line.strip().split("\t")[0] for line in _lines(Path(path), "prediction")]
    while expected is not None and len(preds) > expected and not preds[-1]:
        preds.pop()
    return preds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.spider.spider_eval",
        description=(
            "Evaluate text-to-SQL predictions on Spider (Yu et al., 2018) with the results and table of the official\n"
            "test-suite evaluation (evaluation.py, default settings), by hardness level (easy/medium/hard/extra).\n\n"
            "  exec   execution accuracy: both queries run read-only (DISTINCT removed, as officially); results match\n"
            "         as multisets of rows up to a column permutation, in order when the gold text has 'order by'.\n"
            "  match  exact set match and partial matching: both queries parsed with Spider's grammar and compared\n"
            "         component by component (values ignored); a prediction outside the grammar scores 0.\n"
            "  all    both.\n\n"
            "Options named --unofficial-* change the metric (the table header then says so); --plug_value of the\n"
            "official script is not supported."
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
    parser.add_argument("--table", type=Path, help="Spider tables.json (foreign keys); needed for match and all")
    parser.add_argument("--etype", default="all", choices=ETYPES, help="metric: exec, match or all (default: all)")
    parser.add_argument("--keep_distinct", "--keep-distinct", action="store_true",
                        help="official option: keep DISTINCT when executing (default: removed, as officially)")
    for name, description in UNOFFICIAL_OPTIONS.items():
        parser.add_argument(f"--unofficial-{name}", action="store_true", help=f"changes the metric: {description}")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds per query; a prediction over it scores 0 (default {DEFAULT_TIMEOUT_S:g})")
    parser.add_argument("--details", type=Path, help="write per-example results (JSON) to this file")
    parser.add_argument("--verbose", action="store_true", help="print every example that is not fully correct")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    unofficial = [name for name in UNOFFICIAL_OPTIONS if getattr(args, f"unofficial_{name.replace('-', '_')}")]
    try:
        gold, labels = read_gold_file(args.gold)
        pred = read_pred_file(args.pred, expected=len(gold))
        if len(gold) != len(pred):
            raise InputFileError(
                f"{args.pred} has {len(pred)} lines (blank lines count as empty predictions) but {args.gold} has "
                f"{len(gold)} examples. Write exactly one prediction per gold example, in the same order, one per "
                "line (an empty line for a missing prediction).")
        result = evaluate(gold, pred, args.db, args.table, args.etype, timeout_s=args.timeout, labels=labels,
                          keep_distinct=args.keep_distinct, unofficial=unofficial)
    except (InputFileError, EvaluationInputError, SchemaError, GoldQueryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.verbose:
        for example in result.examples:
            if example.exec_score == 0 or example.exact_score == 0:
                print(f"[{example.hardness}] {labels[example.index]}")
                print(f"  pred: {example.pred}\n  gold: {example.gold}")
                for reason in dict.fromkeys((example.exec_reason, example.exact_reason)):
                    if reason:
                        print(f"  {reason}")
    print(result.format_table())
    if args.details:
        args.details.write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    return 0
