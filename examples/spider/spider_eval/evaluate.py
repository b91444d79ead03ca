"""Corpus-level Spider evaluation with the official test-suite evaluation's results and table.

``evaluate(gold, pred, db_dir, tables_path)`` scores every example the way the official ``evaluation.py`` does with
its default settings (``--etype all``, values not plugged, DISTINCT not kept): the gold query's hardness, execution
match (``exec_match``), exact set match and the partial-matching scores (``matching``), then averages them per
hardness level exactly as the official script, including its partial accuracy / recall / F1 rules.
``EvalResult.format_table()`` is the official ``print_scores`` table, row for row.

As in the official script, the prediction text has every ``value`` replaced by ``1`` before it is scored, and a
prediction outside Spider's grammar is compared, for exact match, as an empty query. Differences, all on input the
official script cannot score: an empty prediction (a blank line in the file; the official script reads it as a
separator and then crashes) scores 0 / 0, is compared as an empty query and is named in the details; a gold query
that cannot be parsed or run raises ``GoldQueryError`` (the official script stops there as well); a prediction that
writes or runs past ``timeout_s`` scores 0.

Options that change the metric are off by default, and the table header names them when on:

* ``keep_distinct`` -- the official ``--keep_distinct`` flag (DISTINCT kept when executing);
* ``unofficial`` -- any of ``UNOFFICIAL_OPTIONS`` (not in the official script): ``strict-joins`` (exact match also
  compares the ON conditions), ``lenient-parse`` (``INNER JOIN``, ``<>`` and SELECT aliases parse), ``keep-value-word``
  (no ``value`` -> ``1`` rewrite of predictions).

    D = "examples/spider/data/mini_spider"
    result = evaluate([("SELECT count(*) FROM singer", "concert_singer")], ["SELECT count(*) FROM singer"],
                      f"{D}/database", f"{D}/tables.json")
    print(result.format_table())          # or: python -m examples.spider.spider_eval --help
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from .exec_match import DEFAULT_TIMEOUT_S, GoldQueryError, exec_match
from .grammar import SqlParseError, empty_sql, parse_sql, read_schema
from .matching import HARDNESS_LEVELS, PARTIAL_TYPES, eval_hardness, exact_match, join_conditions, normalize
from .schema import load_tables_json

__all__ = [
    "ETYPES",
    "LEVELS",
    "UNOFFICIAL_OPTIONS",
    "EvalResult",
    "EvaluationInputError",
    "ExampleResult",
    "database_path",
    "evaluate",
    "official_prediction",
]

EType = Literal["exec", "match", "all"]
ETYPES: tuple[str, ...] = ("exec", "match", "all")
LEVELS: tuple[str, ...] = (*HARDNESS_LEVELS, "all")
UNOFFICIAL_OPTIONS: dict[str, str] = {
    "strict-joins": "exact match also requires the same JOIN ... ON column pairs",
    "lenient-parse": "INNER JOIN, <> and SELECT-list aliases parse instead of scoring 0 on exact match",
    "keep-value-word": "predictions are scored as written (the official script replaces every 'value' by '1')",
}
EMPTY_REASON = "empty prediction (blank line): scored 0"


class EvaluationInputError(ValueError):
    """Inputs do not fit together (counts differ, unknown db_id, missing database file ...)."""


@dataclass
class ExampleResult:
    """One example's scores; ``pred`` is the prediction as scored (``official_prediction``), ``partial`` the
    official per-component scores, the reasons say why a score is 0."""

    index: int
    db_id: str
    gold: str
    pred: str
    hardness: str
    empty_prediction: bool = False
    exec_score: int | None = None
    exec_reason: str | None = None
    exact_score: int | None = None
    exact_reason: str | None = None
    partial: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class EvalResult:
    etype: str
    scores: dict[str, dict[str, Any]]
    examples: list[ExampleResult]
    keep_distinct: bool = False
    unofficial: tuple[str, ...] = ()

    @property
    def execution(self) -> float:
        return float(self.scores["all"]["exec"])

    @property
    def exact(self) -> float:
        return float(self.scores["all"]["exact"])

    def header(self) -> list[str]:
        """Lines naming the options that change the metric (none by default)."""
        lines = []
        if self.unofficial:
            names = ", ".join(f"{name} ({UNOFFICIAL_OPTIONS[name]})" for name in self.unofficial)
            lines.append(f"UNOFFICIAL METRIC, not comparable with published Spider numbers: {names}")
        if self.keep_distinct:
            lines.append("official option --keep_distinct: DISTINCT is kept when executing")
        return lines

    def format_table(self) -> str:
        """``header()`` lines (options that change the metric, if any), then ``official_table()``."""
        return "\n".join([*self.header(), self.official_table()])

    def official_table(self) -> str:
        """The official ``print_scores`` table, row for row (one session, so no turn rows)."""
        def row(name: str, values: list[Any], fmt: str) -> str:
            return ("{:20} " + " ".join([fmt] * len(values))).format(name, *values)

        lines = [row("", list(LEVELS), "{:20}"),
                 row("count", [self.scores[level]["count"] for level in LEVELS], "{:<20d}")]
        if self.etype in ("all", "exec"):
            lines.append("=====================   EXECUTION ACCURACY     =====================")
            lines.append(row("execution", [self.scores[level]["exec"] for level in LEVELS], "{:<20.3f}"))
        if self.etype in ("all", "match"):
            lines += ["", "====================== EXACT MATCHING ACCURACY ====================="]
            lines.append(row("exact match", [self.scores[level]["exact"] for level in LEVELS], "{:<20.3f}"))
            for title, key in (("\n---------------------PARTIAL MATCHING ACCURACY----------------------", "acc"),
                               ("---------------------- PARTIAL MATCHING RECALL ----------------------", "rec"),
                               ("---------------------- PARTIAL MATCHING F1 --------------------------", "f1")):
                lines += title.split("\n")
                for type_ in PARTIAL_TYPES:
                    values = [self.scores[level]["partial"][type_][key] for level in LEVELS]
                    lines.append(row(type_, values, "{:<20.3f}"))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"etype": self.etype, "keep_distinct": self.keep_distinct, "unofficial": list(self.unofficial),
                "scores": self.scores, "examples": [asdict(example) for example in self.examples]}


def database_path(db_dir: str | Path, db_id: str) -> Path:
    """Spider's layout: ``<db_dir>/<db_id>/<db_id>.sqlite``."""
    return Path(db_dir) / db_id / f"{db_id}.sqlite"


def official_prediction(sql: str, keep_value_word: bool = False) -> str:
    """The prediction as the official script reads it from its one-line-per-query file: line breaks and tabs
    become spaces, surrounding whitespace goes, and every ``value`` becomes ``1`` (unless ``keep_value_word``)."""
    line = re.sub(r"[\r\n\t]", " ", sql).strip()
    return line if keep_value_word else line.replace("value", "1")


def _new_scores() -> dict[str, dict[str, Any]]:
    return {level: {"count": 0, "exec": 0, "exact": 0.0,
                    "partial": {t: {"acc": 0.0, "rec": 0.0, "f1": 0.0, "acc_count": 0, "rec_count": 0}
                                for t in PARTIAL_TYPES}} for level in LEVELS}


def _add(scores: dict[str, dict[str, Any]], example: ExampleResult) -> None:
    for level in (example.hardness, "all"):
        scores[level]["count"] += 1
        scores[level]["exec"] += example.exec_score or 0
        scores[level]["exact"] += example.exact_score or 0
        for type_, part in example.partial.items():
            total = scores[level]["partial"][type_]
            if part["pred_total"] > 0:
                total["acc"] += part["acc"]
                total["acc_count"] += 1
            if part["label_total"] > 0:
                total["rec"] += part["rec"]
                total["rec_count"] += 1
            total["f1"] += part["f1"]


def _average(scores: dict[str, dict[str, Any]], etype: str) -> None:
    """Official averaging: fractions per level; partial acc / rec over the examples that have the component, and
    F1 from those two (1 when both are 0)."""
    for level in LEVELS:
        level_scores = scores[level]
        if level_scores["count"] == 0:
            continue
        if etype in ("all", "exec"):
            level_scores["exec"] /= level_scores["count"]
        if etype in ("all", "match"):
            level_scores["exact"] /= level_scores["count"]
            for part in level_scores["partial"].values():
                part["acc"] = part["acc"] / part["acc_count"] if part["acc_count"] else 0
                part["rec"] = part["rec"] / part["rec_count"] if part["rec_count"] else 0
                both = part["acc"] + part["rec"]
                part["f1"] = 1 if both == 0 else 2.0 * part["acc"] * part["rec"] / both


def _check_inputs(gold: Sequence[tuple[str, str]], pred: Sequence[str], db_dir: Path, tables: set[str] | None,
                  names: list[str]) -> None:
    if len(gold) != len(pred):
        raise EvaluationInputError(f"{len(gold)} gold examples but {len(pred)} predictions; give exactly one "
                                   "prediction per gold example, in the same order ('' for a missing one)")
    problems = []
    for index, (_, db_id) in enumerate(gold):
        if tables is not None and db_id not in tables:
            problems.append(f"{names[index]}: db_id {db_id!r} is not in tables.json")
        elif not database_path(db_dir, db_id).is_file():
            problems.append(f"{names[index]}: database file {database_path(db_dir, db_id)} does not exist")
    if problems:
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise EvaluationInputError(f"{len(problems)} example(s) refer to unknown databases:\n  "
                                   + "\n  ".join(problems[:20]) + more + "\nCheck --db (the folder holding "
                                   "<db_id>/<db_id>.sqlite) and --table (tables.json).")


def evaluate(
    gold: Sequence[tuple[str, str]],
    pred: Sequence[str],
    db_dir: str | Path,
    tables_path: str | Path | None,
    etype: EType | str = "all",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    labels: Sequence[str] | None = None,
    keep_distinct: bool = False,
    unofficial: Collection[str] = (),
) -> EvalResult:
    """Evaluate predictions against gold ``(sql, db_id)`` pairs (``tables_path`` may be None for ``etype="exec"``).

    Raises ``EvaluationInputError`` for inputs that do not fit, ``SchemaError`` for a bad tables.json, and
    ``GoldQueryError`` when a gold query cannot be parsed or run. ``labels`` name the examples in messages.
    """
    if etype not in ETYPES:
        raise EvaluationInputError(f"unknown etype {etype!r}; use one of {', '.join(ETYPES)}")
    unknown = sorted(set(unofficial) - set(UNOFFICIAL_OPTIONS))
    if unknown:
        raise EvaluationInputError(f"unknown unofficial option(s) {unknown}; choose from {list(UNOFFICIAL_OPTIONS)}")
    db_dir = Path(db_dir)
    if not db_dir.is_dir():
        raise EvaluationInputError(f"database folder not found: {db_dir} (give the folder holding <db_id>/)")
    if tables_path is None and etype != "exec":
        raise EvaluationInputError(f"etype {etype!r} needs tables.json (foreign keys); pass tables_path / --table")
    schemas = load_tables_json(tables_path) if tables_path is not None else None
    names = list(labels) if labels is not None else [f"example {i}" for i in range(len(gold))]
    _check_inputs(gold, pred, db_dir, set(schemas) if schemas is not None else None, names)
    options = tuple(name for name in UNOFFICIAL_OPTIONS if name in set(unofficial))
    lenient = "lenient-parse" in options
    scores = _new_scores()
    examples = []
    for index, ((gold_sql, db_id), raw_pred) in enumerate(zip(gold, pred, strict=True)):
        db_path = database_path(db_dir, db_id)
        try:
            schema = read_schema(db_path)
        except sqlite3.Error as error:
            raise EvaluationInputError(f"{names[index]}: cannot read the tables of {db_path} ({error}); it must be "
                                       "a SQLite database (Spider's <db_id>/<db_id>.sqlite)") from error
        try:
            gold_parse = parse_sql(gold_sql, schema, lenient)
        except SqlParseError as error:
            raise GoldQueryError(f"{names[index]}: the gold query is outside Spider's grammar, so the official "
                                 f"evaluation cannot score it either ({error}); fix or drop it.\n  query: {gold_sql}"
                                 ) from error
        pred_sql = official_prediction(raw_pred, "keep-value-word" in options)
        example = ExampleResult(index, db_id, gold_sql, pred_sql, eval_hardness(gold_parse), not pred_sql)
        if etype in ("all", "exec"):
            try:
                outcome = exec_match(db_path, pred_sql, gold_sql, timeout_s=timeout_s, keep_distinct=keep_distinct)
            except GoldQueryError as error:
                raise GoldQueryError(f"{names[index]}: {error}") from error
            example.exec_score = outcome.score
            example.exec_reason = EMPTY_REASON if example.empty_prediction else outcome.reason
        if etype in ("all", "match"):
            assert schemas is not None
            _exact(example, gold_parse, schema, schemas[db_id].foreign_key_map(), lenient, "strict-joins" in options)
        _add(scores, example)
        examples.append(example)
    _average(scores, etype)
    return EvalResult(str(etype), scores, examples, keep_distinct, options)


def _exact(example: ExampleResult, gold_parse: dict[str, Any], schema: Any, kmap: dict[str, str], lenient: bool,
           strict_joins: bool) -> None:
    reason = EMPTY_REASON if example.empty_prediction else None
    try:
        pred_parse = parse_sql(example.pred, schema, lenient) if not example.empty_prediction else empty_sql()
    except SqlParseError as error:
        pred_parse = empty_sql()
        reason = f"prediction outside Spider's grammar, compared as an empty query (as officially): {error}"
    score, example.partial = exact_match(normalize(pred_parse, schema, kmap), normalize(gold_parse, schema, kmap))
    if score and strict_joins and join_conditions(pred_parse) != join_conditions(gold_parse):
        score, reason = 0, "different JOIN ... ON conditions (unofficial strict-joins option)"
    if not score and reason is None:
        failed = [name for name, part in example.partial.items() if part["f1"] != 1]
        reason = f"mismatch in {', '.join(failed)}" if failed else "different FROM tables"
    example.exact_score, example.exact_reason = score, reason
