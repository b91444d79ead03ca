"""Load and validate Calc-X style task files: `load_calc_x(path) -> list[dict]`.

What it really is: `datasets.load_dataset("json" | "parquet", data_files=path)` read offline into memory (in a
throw-away cache folder, so nothing is left behind), then every row checked. A file is `.jsonl` / `.json` (one JSON
object per line) or `.parquet`, with these fields per row:

- `id`: non-empty string (an integer is accepted and turned into a string), unique in the file;
- `question`: non-empty string;
- `chain`: string, the worked calculator steps (may be empty);
- `result`: the reference answer, non-empty string (numbers are accepted and turned into strings);
- `source`: string naming where the row came from.

Extra fields (e.g. `difficulty`) are kept. Any bad row raises `CalcXDataError` naming the file, the row (1-based; for
JSON lines also the line number), the field, the rule and the fix. The bundled sample is `BUNDLED_TRAIN` /
`BUNDLED_TEST` (written by `python examples/calc_x/data/generate.py`).

    from examples.calc_x.data import BUNDLED_TEST, load_calc_x
    tasks = load_calc_x(BUNDLED_TEST)      # [{"id": "test-0000", "question": "...", "result": "17", ...}, ...]
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["BUNDLED_TEST", "BUNDLED_TRAIN", "REQUIRED_FIELDS", "CalcXDataError", "load_calc_x", "validate_row"]

DATA_DIR = Path(__file__).resolve().parent / "data"
BUNDLED_TRAIN = DATA_DIR / "train.jsonl"
BUNDLED_TEST = DATA_DIR / "test.jsonl"
REQUIRED_FIELDS = ("id", "question", "chain", "result", "source")
_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
_FIX = "Fix the row, or regenerate the sample with `python examples/calc_x/data/generate.py`."


class CalcXDataError(ValueError):
    """A Calc-X file is missing, has an unknown format, or holds a malformed row (the message says which and why)."""


def _where(path: Path, row: int, line: int | None) -> str:
    return f"{path}: row {row}" + (f" (line {line})" if line is not None else "")


def validate_row(row: dict[str, Any], path: Path, row_number: int, line: int | None = None) -> dict[str, Any]:
    """The row with `id`/`result` as strings; raises `CalcXDataError` for a missing or ill-typed field."""
    where = _where(path, row_number, line)
    clean = dict(row)
    for field in REQUIRED_FIELDS:
        value = row.get(field)
        if value is None:
            raise CalcXDataError(f"{where}: field {field!r} is missing or null; every row needs "
                                 f"{', '.join(REQUIRED_FIELDS)}. {_FIX}")
        if field in ("id", "result") and isinstance(value, int | float) and not isinstance(value, bool):
            value = str(int(value)) if isinstance(value, float) and value.is_integer() and field == "id" else str(value)
        if not isinstance(value, str):
            raise CalcXDataError(f"{where}: field {field!r} must be a string, got {type(value).__name__} "
                                 f"{str(value)[:60]!r}. {_FIX}")
        if field in ("id", "question", "result") and not value.strip():
            raise CalcXDataError(f"{where}: field {field!r} is empty; it must be a non-empty string. {_FIX}")
        clean[field] = value
    return clean


def _json_lines(path: Path) -> list[int]:
    """Line numbers of the data rows; raises for a line that is not a JSON object (datasets would not say where)."""
    lines: list[int] = []
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            row = len(lines) + 1
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise CalcXDataError(f"{_where(path, row, number)}: not valid JSON ({exc.msg} at column {exc.colno}); "
                                     f"each line must be one JSON object. {_FIX}") from None
            if not isinstance(value, dict):
                raise CalcXDataError(f"{_where(path, row, number)}: is a JSON {type(value).__name__}, not an object "
                                     f"with fields {', '.join(REQUIRED_FIELDS)}. {_FIX}")
            lines.append(number)
    return lines


def load_calc_x(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All rows of a `.jsonl`/`.json`/`.parquet` Calc-X file, validated (see the module docstring)."""
    file = Path(path)
    builder = _FORMATS.get(file.suffix.lower())
    if builder is None:
        raise CalcXDataError(f"{file}: unknown file type {file.suffix!r}; use one of {', '.join(sorted(_FORMATS))} "
                             "(convert other formats with pandas or datasets first)")
    if not file.is_file():
        raise CalcXDataError(f"{file}: no such file. The bundled sample is {BUNDLED_TRAIN} / {BUNDLED_TEST}; "
                             "write it with `python examples/calc_x/data/generate.py`.")
    lines = _json_lines(file) if builder == "json" else None
    if lines is not None and not lines:
        return []
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # a local file never needs the hub; avoids ~20 s of retries
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets

    bars_were_on = not datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # "Generating train split" bars would clutter every agent worker's log
    with tempfile.TemporaryDirectory(prefix="calc_x-datasets-") as cache:
        try:
            table = datasets.load_dataset(builder, data_files=str(file), split="train", cache_dir=cache,
                                          keep_in_memory=True)
        except Exception as exc:  # arrow type clashes between rows, a broken parquet file, ...
            cause = exc.__cause__ or exc
            raise CalcXDataError(f"{file}: datasets could not read it as {builder}: {type(cause).__name__}: "
                                 f"{str(cause)[:300]}. A field with different types in different rows (e.g. "
                                 f"'result' as number and as text) causes this; make each field one type. "
                                 f"{_FIX}") from exc
        finally:
            if bars_were_on:
                datasets.enable_progress_bars()
        rows = table.to_list()
    missing = [f for f in REQUIRED_FIELDS if f not in table.column_names]
    if missing and rows:
        line = lines[0] if lines else None
        raise CalcXDataError(f"{_where(file, 1, line)}: field {missing[0]!r} is missing in every row; each row needs "
                             f"{', '.join(REQUIRED_FIELDS)}. {_FIX}")
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        line = lines[index] if lines is not None and index < len(lines) else None
        clean = validate_row(row, file, index + 1, line)
        if clean["id"] in seen:
            raise CalcXDataError(f"{_where(file, index + 1, line)}: field 'id' {clean['id']!r} repeats row "
                                 f"{seen[clean['id']]}; ids must be unique. {_FIX}")
        seen[clean["id"]] = index + 1
        out.append(clean)
    return out
