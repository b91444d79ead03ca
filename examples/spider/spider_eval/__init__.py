"""Spider text-to-SQL evaluation: execution accuracy, exact set match and hardness levels.

Our own implementation of the metrics defined by Spider (Yu et al., 2018) and its official
``evaluation.py``; see the module docstrings for the exact definitions and known differences.
"""

from __future__ import annotations

from .components import SqlComponents, SqlParseError, parse_sql
from .evaluate import EvalResult, EvaluationInputError, ExampleResult, LevelScores, database_path, evaluate
from .exact_match import MatchResult, exact_match
from .exec_match import ExecMatchResult, GoldQueryError, QueryError, connect_readonly, exec_match, run_query
from .hardness import HARDNESS_LEVELS, eval_hardness
from .schema import DbSchema, SchemaError, introspect_sqlite, load_tables_json

__all__ = [
    "HARDNESS_LEVELS",
    "DbSchema",
    "EvalResult",
    "EvaluationInputError",
    "ExampleResult",
    "ExecMatchResult",
    "GoldQueryError",
    "LevelScores",
    "MatchResult",
    "QueryError",
    "SchemaError",
    "SqlComponents",
    "SqlParseError",
    "connect_readonly",
    "database_path",
    "eval_hardness",
    "evaluate",
    "exact_match",
    "exec_match",
    "introspect_sqlite",
    "load_tables_json",
    "parse_sql",
    "run_query",
]
