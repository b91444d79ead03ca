"""Spider text-to-SQL evaluation that scores exactly like the official test-suite evaluation.

Execution accuracy, exact set match, partial matching and hardness levels with the results of the official
``evaluation.py`` / ``process_sql.py`` / ``exec_eval.py`` (test-suite-sql-eval, default settings), proven by the
differential tests in ``tests/spider/test_spider_official_diff.py``; inputs are checked and the databases are only
ever opened read-only. Run ``python -m examples.spider.spider_eval --help``; the modules say what they re-implement.
"""

from __future__ import annotations

from .evaluate import (
    UNOFFICIAL_OPTIONS,
    EvalResult,
    EvaluationInputError,
    ExampleResult,
    database_path,
    evaluate,
    official_prediction,
)
from .exec_match import ExecMatchResult, GoldQueryError, QueryError, connect_readonly, exec_match, result_eq, run_query
from .grammar import Schema, SqlParseError, parse_sql, read_schema
from .matching import HARDNESS_LEVELS, PARTIAL_TYPES, eval_hardness, exact_match, normalize, partial_match
from .schema import DbSchema, SchemaError, introspect_sqlite, load_tables_json

__all__ = [
    "HARDNESS_LEVELS",
    "PARTIAL_TYPES",
    "UNOFFICIAL_OPTIONS",
    "DbSchema",
    "EvalResult",
    "EvaluationInputError",
    "ExampleResult",
    "ExecMatchResult",
    "GoldQueryError",
    "QueryError",
    "Schema",
    "SchemaError",
    "SqlParseError",
    "connect_readonly",
    "database_path",
    "eval_hardness",
    "evaluate",
    "exact_match",
    "exec_match",
    "introspect_sqlite",
    "load_tables_json",
    "normalize",
    "official_prediction",
    "parse_sql",
    "partial_match",
    "read_schema",
    "result_eq",
    "run_query",
]
