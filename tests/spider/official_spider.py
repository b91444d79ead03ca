"""The official Spider evaluation, loaded for the differential tests, and how its ``evaluate()`` scores pairs.

The official test-suite-sql-eval (``evaluation.py``, ``process_sql.py``, ``exec_eval.py``, ``parse.py``) comes from
the test-only dependency nl2sql360 1.1.0 (``nl2sql360.evaluator.test_suite_sql_eval``), imported from the installed
package, never copied here. nl2sql360's copy differs from the upstream repository only in ``evaluate()`` (lists
instead of file names, returns the per-pair entries instead of printing the table, parses an unparsable gold as an
empty query, and has the line ``p_str = p_str.replace("value", "1")`` commented out) and in quoting the table name
in ``PRAGMA table_info``. So:

* ``load_official()`` imports the four modules without nl2sql360's package ``__init__`` (which pulls in its BIRD
  evaluators and their dependencies), swaps ``process_sql.word_tokenize`` for
  ``nltk.word_tokenize(s, preserve_line=True)`` (the plain call needs NLTK's punkt data, which is not available
  offline; nothing else changes) and the progress bar of ``evaluate()`` for a plain iteration;
* ``official_pair`` scores one pair with nl2sql360's ``evaluate()`` after applying the upstream ``value`` -> ``1``
  rewrite to the prediction, exactly as upstream ``evaluate()`` does before scoring;
* ``official_table`` adds per-pair results up as upstream ``evaluate()`` does (nl2sql360 returns the pairs, not the
  sums) and prints them with the official ``print_scores``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["OfficialCrash", "load_official", "official_pair", "official_table"]

_PACKAGE = "_official_test_suite_sql_eval"


class OfficialCrash(Exception):
    """The official ``evaluate()`` raised on this pair; ``kind`` names why."""

    def __init__(self, kind: str, error: BaseException) -> None:
        super().__init__(f"{kind}: {type(error).__name__}: {error}")
        self.kind = kind


def load_official() -> types.SimpleNamespace:
    """The official modules (``process_sql``, ``evaluation``, ``exec_eval``), patched only as the docstring says."""
    import nltk

    spec = importlib.util.find_spec("nl2sql360")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("nl2sql360 is not installed: run `make setup` (it installs nl2sql360==1.1.0 --no-deps)")
    base = Path(next(iter(spec.submodule_search_locations))) / "evaluator" / "test_suite_sql_eval"
    if _PACKAGE not in sys.modules:
        package = types.ModuleType(_PACKAGE)
        package.__path__ = [str(base)]
        sys.modules[_PACKAGE] = package
        for name in ("process_sql", "parse", "exec_eval", "evaluation"):
            module_spec = importlib.util.spec_from_file_location(f"{_PACKAGE}.{name}", base / f"{name}.py")
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_spec.name] = module
            module_spec.loader.exec_module(module)
            if name == "process_sql":
                module.word_tokenize = lambda text: nltk.word_tokenize(text, preserve_line=True)
            if name == "evaluation":
                module.tqdm = lambda iterable, *args, **kwargs: iterable
    modules = {name: sys.modules[f"{_PACKAGE}.{name}"] for name in ("process_sql", "evaluation", "exec_eval")}
    return types.SimpleNamespace(**modules)


def _total_sorted(items: Iterable[Any]) -> list[Any]:
    return sorted(items, key=lambda unit: (unit[0], repr(unit[1])))


def official_pair(official: types.SimpleNamespace, gold: str, db_id: str, pred: str, db_dir: Path,
                  kmaps: dict[str, Any], etype: str = "all", keep_distinct: bool = False
                  ) -> tuple[dict[str, Any], str | None]:
    """``(entry, crash)``: the official ``evaluate()`` entry of one pair (hardness, exec, exact, partial).

    Where the official code raises while sorting two different FROM subqueries (``sorted`` cannot order dicts), the
    pair is scored by the same official code with a sort that cannot fail, which compares the table units as a
    multiset, as the sort does whenever it succeeds; ``crash`` then names that. Other errors raise ``OfficialCrash``.
    """
    args = ([f"{gold}\t{db_id}"], [pred.replace("value", "1")], str(db_dir), etype, kmaps, False, keep_distinct, False)
    evaluation = official.evaluation
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return evaluation.evaluate(*args)[0], None
    except TypeError as error:
        if "'<' not supported between instances of 'dict' and 'dict'" not in str(error):
            raise OfficialCrash("official evaluate() raised", error) from error
        evaluation.sorted = _total_sorted
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                return evaluation.evaluate(*args)[0], "official evaluate() raises TypeError sorting FROM subqueries"
        finally:
            del evaluation.sorted
    except Exception as error:
        raise OfficialCrash("official evaluate() raised", error) from error


def official_table(official: types.SimpleNamespace, entries: list[dict[str, Any]], etype: str = "all") -> str:
    """The official ``print_scores`` table for per-pair entries, summed and averaged as upstream ``evaluate()``."""
    partial_types = ["select", "select(no AGG)", "where", "where(no OP)", "group(no Having)", "group", "order",
                     "and/or", "IUEN", "keywords"]
    levels = ["easy", "medium", "hard", "extra", "all", "joint_all"]
    scores: dict[str, Any] = {}
    for level in levels:
        scores[level] = {"count": 0, "partial": {}, "exact": 0.0, "exec": 0}
        for type_ in partial_types:
            scores[level]["partial"][type_] = {"acc": 0.0, "rec": 0.0, "f1": 0.0, "acc_count": 0, "rec_count": 0}
    for entry in entries:
        for level in (entry["hardness"], "all"):
            scores[level]["count"] += 1
            if etype in ("all", "exec"):
                scores[level]["exec"] += entry["exec"]
            if etype in ("all", "match"):
                scores[level]["exact"] += entry["exact"]
                for type_ in partial_types:
                    part, total = entry["partial"][type_], scores[level]["partial"][type_]
                    if part["pred_total"] > 0:
                        total["acc"] += part["acc"]
                        total["acc_count"] += 1
                    if part["label_total"] > 0:
                        total["rec"] += part["rec"]
                        total["rec_count"] += 1
                    total["f1"] += part["f1"]
    for level in levels:
        level_scores = scores[level]
        if level_scores["count"] == 0:
            continue
        if etype in ("all", "exec"):
            level_scores["exec"] /= level_scores["count"]
        if etype in ("all", "match"):
            level_scores["exact"] /= level_scores["count"]
            for total in level_scores["partial"].values():
                total["acc"] = 0 if total["acc_count"] == 0 else total["acc"] / total["acc_count"] * 1.0
                total["rec"] = 0 if total["rec_count"] == 0 else total["rec"] / total["rec_count"] * 1.0
                if total["acc"] == 0 and total["rec"] == 0:
                    total["f1"] = 1
                else:
                    total["f1"] = 2.0 * total["acc"] * total["rec"] / (total["rec"] + total["acc"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        official.evaluation.print_scores(scores, etype, include_turn_acc=False)
    return out.getvalue()
