"""The Calc-X loader (jsonl and parquet, clear errors for bad rows) and the seeded sample generator."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from examples.calc_x.data import BUNDLED_TEST, BUNDLED_TRAIN, CalcXDataError, load_calc_x
from examples.calc_x.reward import score

GOOD = [
    {"id": "a", "question": "What is 3 + 4?", "chain": "", "result": "7", "source": "unit"},
    {"id": "b", "question": "What is 2 * 5?", "chain": "<result>10</result>", "result": "10", "source": "unit",
     "difficulty": "arith1"},
]


def _generator() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "examples" / "calc_x" / "data" / "generate.py"
    spec = importlib.util.spec_from_file_location("calc_x_generate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_good_jsonl_and_parquet(tmp_path: Path) -> None:
    from_jsonl = load_calc_x(_jsonl(tmp_path / "good.jsonl", GOOD))
    pq.write_table(pa.Table.from_pylist([{**row, "difficulty": row.get("difficulty")} for row in GOOD]),
                   tmp_path / "good.parquet")
    from_parquet = load_calc_x(tmp_path / "good.parquet")
    for rows in (from_jsonl, from_parquet):
        assert [r["id"] for r in rows] == ["a", "b"]
        assert rows[1]["result"] == "10" and rows[1]["difficulty"] == "arith1"


@pytest.mark.parametrize(("bad_row", "fragment"), [
    ({**GOOD[1], "result": None}, "row 2 (line 2): field 'result' is missing or null"),
    ({k: v for k, v in GOOD[1].items() if k != "question"}, "row 2 (line 2): field 'question' is missing"),
    ({**GOOD[1], "question": "  "}, "row 2 (line 2): field 'question' is empty"),
    ({**GOOD[1], "id": "a"}, "row 2 (line 2): field 'id' 'a' repeats row 1"),
    ({**GOOD[1], "chain": ["x"]}, "row 2 (line 2): field 'chain' must be a string, got list"),
    ([1, 2], "row 2 (line 2): is a JSON list, not an object"),
])
def test_malformed_jsonl_row_names_file_row_field(tmp_path: Path, bad_row: object, fragment: str) -> None:
    path = _jsonl(tmp_path / "bad.jsonl", [GOOD[0], bad_row])
    with pytest.raises(CalcXDataError) as info:
        load_calc_x(path)
    assert str(info.value).startswith(str(path))
    assert fragment in str(info.value)
    assert "Fix" in str(info.value)


def test_invalid_json_line_and_parquet_null(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(GOOD[0]) + "\n\n{not json\n")
    with pytest.raises(CalcXDataError, match=r"row 2 \(line 3\): not valid JSON"):
        load_calc_x(path)
    pq.write_table(pa.Table.from_pylist([GOOD[0], {**GOOD[0], "id": "z", "result": None}]), tmp_path / "b.parquet")
    with pytest.raises(CalcXDataError, match=r"b\.parquet: row 2: field 'result' is missing or null"):
        load_calc_x(tmp_path / "b.parquet")


def test_wrong_suffix_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CalcXDataError, match="unknown file type '.csv'"):
        load_calc_x(tmp_path / "x.csv")
    with pytest.raises(CalcXDataError, match="no such file"):
        load_calc_x(tmp_path / "missing.jsonl")


def test_generator_is_deterministic_and_disjoint() -> None:
    generate = _generator().generate
    train, test = generate(seed=0)
    assert (train, test) == generate(seed=0)
    assert generate(seed=1) != (train, test)
    assert (len(train), len(test)) == (400, 100)
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    assert {r["difficulty"] for r in train} == {"arith1", "word1", "word2"}
    for row in train + test:  # the chain's result is the reference, and the reference scores itself
        assert row["chain"].endswith(f"<result>{row['result']}</result>")
        assert score(f"### ANSWER: {row['result']} ###", row["result"]).reward == 1.0


def test_bundled_files_match_the_generator(tmp_path: Path) -> None:
    module = _generator()
    assert module.main(["--out", str(tmp_path)]) == 0
    assert (tmp_path / "train.jsonl").read_bytes() == BUNDLED_TRAIN.read_bytes()
    assert (tmp_path / "test.jsonl").read_bytes() == BUNDLED_TEST.read_bytes()
    assert len(load_calc_x(BUNDLED_TRAIN)) == 400 and len(load_calc_x(BUNDLED_TEST)) == 100
