"""Corpus-level Spider evaluation: execution accuracy and exact set match, broken down by hardness.

``evaluate`` takes gold ``(sql, db_id)`` pairs and predicted SQL strings, scores every example with
``exec_match`` and / or ``exact_match``, classifies the gold query with ``eval_hardness``, and returns an
``EvalResult`` whose ``format_table()`` prints the official-style table (columns easy / medium / hard /
extra / all; rows count, execution, exact match). Scores are fractions of examples in each level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from .components import SqlParseError, parse_sql
from .exact_match import exact_match
from .exec_match import DEFAULT_TIMEOUT_S, GoldQueryError, exec_match
from .hardness import HARDNESS_LEVELS, eval_hardness
from .schema import DbSchema, load_tables_json

__all__ = [
    "ETYPES",
    "EvalResult",
    "EvaluationInputError",
    "ExampleResult",
    "LevelScores",
    "database_path",
    "evaluate",
]

EType = Literal["exec", "match", "all"]
ETYPES: tuple[str, ...] = ("exec", "match", "all")
LEVELS: tuple[str, ...] = (*HARDNESS_LEVELS, "all")


class EvaluationInputError(ValueError):
    """Inputs do not fit together (counts differ, unknown db_id, missing database file ...)."""


@dataclass
class ExampleResult:
    index: int
    db_id: str
    gold: str
    pred: str
    hardness: str
    exec_score: int | None = None
    exec_reason: str | None = None
    exact_score: int | None = None
    exact_reason: str | None = None
    components: dict[str, bool] = field(default_factory=dict)


@dataclass
class LevelScores:
    count: int = 0
    exec_correct: int = 0
    exact_correct: int = 0

    @property
    def execution(self) -> float:
        return self.exec_correct / self.count if self.count else 0.0

    @property
    def exact(self) -> float:
        return self.exact_correct / self.count if self.count else 0.0


@dataclass
class EvalResult:
    etype: str
    levels: dict[str, LevelScores]
    examples: list[ExampleResult]

    @property
    def execution(self) -> float:
        return self.levels["all"].execution

    @property
    def exact(self) -> float:
        return self.levels["all"].exact

    def format_table(self) -> str:
        """The official script's summary table."""
        lines = ["{:20} {:20} {:20} {:20} {:20} {:20}".format("", *LEVELS)]
        lines.append("{:20} {:<20d} {:<20d} {:<20d} {:<20d} {:<20d}".format("count", *self._col("count")))
        row = "{:20} {:<20.3f} {:<20.3f} {:<20.3f} {:<20.3f} {:<20.3f}"
        if self.etype in ("all", "exec"):
            lines.append("=====================   EXECUTION ACCURACY     =====================")
            lines.append(row.format("execution", *self._col("execution")))
        if self.etype in ("all", "match"):
            lines.append("\n====================== EXACT MATCHING ACCURACY =====================")
            lines.append(row.format("exact match", *self._col("exact")))
        return "\n".join(lines)

    def _col(self, name: str) -> list[Any]:
        return [getattr(self.levels[level], name) for level in LEVELS]

    def to_dict(self) -> dict[str, Any]:
        return {
            "etype": self.etype,
            "levels": {
                level: {"count": s.count, "execution": s.execution, "exact": s.exact}
                for level, s in self.levels.items()
            },
            "examples": [asdict(example) for example in self.examples],
        }


def database_path(db_dir: str | Path, db_id: str) -> Path:
    """Spider's layout: ``<db_dir>/<db_id>/<db_id>.sqlite``."""
    return Path(db_dir) / db_id / f"{db_id}.sqlite"


def _check_inputs(
    gold: Sequence[tuple[str, str]], pred: Sequence[str], db_dir: Path, schemas: dict[str, DbSchema], names: list[str]
) -> None:
    if len(gold) != len(pred):
        raise EvaluationInputError(
            f"{len(gold)} gold examples but {len(pred)} predictions; give exactly one prediction per gold example"
        )
    problems = []
    for index, (_, db_id) in enumerate(gold):
        if db_id not in schemas:
            problems.append(f"{names[index]}: db_id {db_id!r} is not in tables.json")
        elif not database_path(db_dir, db_id).is_file():
            problems.append(f"{names[index]}: database file {database_path(db_dir, db_id)} does not exist")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise EvaluationInputError(
            f"{len(problems)} example(s) refer to unknown databases:\n  {shown}{more}\n"
            "Check --db (the folder holding <db_id>/<db_id>.sqlite) and --table (tables.json)."
        )


def evaluate(
    gold: Sequence[tuple[str, str]],
    pred: Sequence[str],
    db_dir: str | Path,
    tables_path: str | Path,
    etype: EType | str = "all",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    labels: Sequence[str] | None = None,
) -> EvalResult:
    """Evaluate predictions against gold ``(sql, db_id)`` pairs.

    ``etype`` is ``"exec"`` (execution accuracy), ``"match"`` (exact set match) or ``"all"``.
    Raises ``EvaluationInputError`` for mismatched inputs, ``SchemaError`` for a bad tables.json, and
    ``GoldQueryError`` when a gold query cannot be parsed or executed. ``labels`` optionally names where each
    example comes from (``"gold.sql:12"``) for error messages; by default ``"example <index>"``.
    """
    if etype not in ETYPES:
        raise EvaluationInputError(f"unknown etype {etype!r}; use one of {', '.join(ETYPES)}")
    db_dir = Path(db_dir)
    if not db_dir.is_dir():
        raise EvaluationInputError(f"database folder not found: {db_dir}")
    schemas = load_tables_json(tables_path)
    names = list(labels) if labels is not None else [f"example {i}" for i in range(len(gold))]
    _check_inputs(gold, pred, db_dir, schemas, names)
    levels = {level: LevelScores() for level in LEVELS}
    examples: list[ExampleResult] = []
    for index, ((gold_sql, db_id), pred_sql) in enumerate(zip(gold, pred, strict=True)):
        schema = schemas[db_id]
        try:
            gold_parsed = parse_sql(gold_sql, schema)
        except SqlParseError as error:
            raise GoldQueryError(
                f"{names[index]}: gold query cannot be parsed: {error}\n  query: {gold_sql}"
            ) from error
        result = ExampleResult(index, db_id, gold_sql, pred_sql, eval_hardness(gold_parsed))
        if etype in ("all", "exec"):
            try:
                outcome = exec_match(database_path(db_dir, db_id), pred_sql, gold_sql, timeout_s=timeout_s)
            except GoldQueryError as error:
                raise GoldQueryError(f"{names[index]}: {error}") from error
            result.exec_score, result.exec_reason = outcome.score, outcome.reason
        if etype in ("all", "match"):
            match = exact_match(pred_sql, gold_parsed, schema)
            result.exact_score, result.exact_reason, result.components = match.score, match.reason, match.components
        for level in (result.hardness, "all"):
            levels[level].count += 1
            levels[level].exec_correct += result.exec_score or 0
            levels[level].exact_correct += result.exact_score or 0
        examples.append(result)
    return EvalResult(str(etype), levels, examples)
