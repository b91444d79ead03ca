"""End-to-end CLI on the bundled mini-Spider: the official table, empty predictions, options that change the
metric, and the input-error messages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from examples.spider.spider_eval import evaluate
from examples.spider.spider_eval.cli import main

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "examples" / "spider" / "data" / "mini_spider"
DB_ARGS = ["--db", str(MINI / "database"), "--table", str(MINI / "tables.json")]


def _gold_as_pred(tmp_path: Path, split: str = "dev") -> tuple[Path, Path]:
    gold = MINI / f"{split}_gold.sql"
    pred = tmp_path / "pred.sql"
    pred.write_text("".join(line.split("\t")[0] + "\n" for line in gold.read_text().splitlines()))
    return gold, pred


def test_cli_gold_as_predictions_scores_100_percent(tmp_path: Path) -> None:
    gold, pred = _gold_as_pred(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.spider.spider_eval",
            "--gold",
            str(gold),
            "--pred",
            str(pred),
            *DB_ARGS,
            "--etype",
            "all",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.strip()}
    assert lines["execution"][1:] == ["1.000"] * 5
    assert lines["exact"][2:] == ["1.000"] * 5
    counts = [int(c) for c in lines["count"][1:]]
    assert counts[-1] == len(gold.read_text().splitlines()) and sum(counts[:-1]) == counts[-1]


def test_python_api_on_train_split(tmp_path: Path) -> None:
    gold_file, _ = _gold_as_pred(tmp_path, "train")
    gold = [tuple(line.split("\t")) for line in gold_file.read_text().splitlines()]
    result = evaluate(gold, [sql for sql, _ in gold], MINI / "database", MINI / "tables.json", "all")
    assert result.execution == 1.0 and result.exact == 1.0
    assert all(example.exec_reason is None for example in result.examples)


def test_cli_reports_line_count_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gold, pred = _gold_as_pred(tmp_path)
    pred.write_text("\n".join(pred.read_text().splitlines()[:-1]) + "\n")
    assert main(["--gold", str(gold), "--pred", str(pred), *DB_ARGS]) == 2
    err = capsys.readouterr().err
    assert "blank lines count as empty predictions" in err and "one prediction per gold example" in err


def test_cli_blank_line_is_an_empty_prediction_named_in_details(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    gold, pred = _gold_as_pred(tmp_path)
    lines = pred.read_text().splitlines()
    lines[1] = "   "
    pred.write_text("\n".join(lines) + "\n\n\n")  # blank lines after the last prediction are ignored
    details = tmp_path / "details.json"
    assert main(["--gold", str(gold), "--pred", str(pred), *DB_ARGS, "--details", str(details)]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert rows["execution"][-1] == rows["exact"][-1] == f"{(len(lines) - 1) / len(lines):.3f}"
    examples = json.loads(details.read_text())["examples"]
    assert [e["index"] for e in examples if e["empty_prediction"]] == [1]
    assert examples[1]["exec_score"] == examples[1]["exact_score"] == 0
    assert "empty prediction" in examples[1]["exec_reason"] and "empty prediction" in examples[1]["exact_reason"]


def test_cli_unofficial_option_is_named_in_the_table_header(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    gold, pred = _gold_as_pred(tmp_path)
    assert main(["--gold", str(gold), "--pred", str(pred), *DB_ARGS]) == 0
    assert "UNOFFICIAL" not in capsys.readouterr().out
    assert main(["--gold", str(gold), "--pred", str(pred), *DB_ARGS, "--unofficial-strict-joins"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("UNOFFICIAL METRIC") and "strict-joins" in first


def test_cli_exec_only_needs_no_tables_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gold, pred = _gold_as_pred(tmp_path)
    db = ["--db", str(MINI / "database")]
    assert main(["--gold", str(gold), "--pred", str(pred), *db, "--etype", "exec"]) == 0
    out = capsys.readouterr().out
    assert "EXECUTION ACCURACY" in out and "EXACT MATCHING" not in out
    assert main(["--gold", str(gold), "--pred", str(pred), *db, "--etype", "match"]) == 2
    assert "needs tables.json" in capsys.readouterr().err


def test_cli_reports_unknown_db_id_with_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gold = tmp_path / "gold.sql"
    gold.write_text("SELECT count(*) FROM singer\tconcert_singer\nSELECT count(*) FROM x\tno_such_db\n")
    pred = tmp_path / "pred.sql"
    pred.write_text("SELECT count(*) FROM singer\nSELECT 1\n")
    assert main(["--gold", str(gold), "--pred", str(pred), *DB_ARGS]) == 2
    err = capsys.readouterr().err
    assert f"{gold}:2" in err and "no_such_db" in err


def test_cli_reports_malformed_gold_line_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gold = tmp_path / "gold.sql"
    gold.write_text("SELECT count(*) FROM singer concert_singer\n")
    assert main(["--gold", str(gold), "--pred", str(gold), *DB_ARGS]) == 2
    assert f"{gold}:1: expected 'SQL<TAB>db_id'" in capsys.readouterr().err
    assert main(["--gold", str(tmp_path / "missing.sql"), "--pred", str(gold), *DB_ARGS]) == 2
    assert "gold file not found" in capsys.readouterr().err


def test_cli_help_describes_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "execution accuracy" in out.lower() and "exact set match" in out.lower() and "--etype" in out


def test_cli_reports_missing_database_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = tmp_path / "database"
    shutil.copytree(MINI / "database", database)
    shutil.rmtree(database / "store")
    gold, pred = _gold_as_pred(tmp_path)
    assert main(["--gold", str(gold), "--pred", str(pred), "--db", str(database), "--table",
                 str(MINI / "tables.json")]) == 2
    err = capsys.readouterr().err
    assert "store.sqlite does not exist" in err and f"{gold}:" in err and "Check --db" in err


def test_cli_reports_unreadable_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gold, pred = _gold_as_pred(tmp_path)
    pred.write_bytes(b"SELECT \xff\n")
    assert main(["--gold", str(gold), "--pred", str(pred), *DB_ARGS]) == 2
    assert "is not UTF-8 text" in capsys.readouterr().err
    database = tmp_path / "database"
    shutil.copytree(MINI / "database", database)
    (database / "store" / "store.sqlite").write_text("not a database")
    _, pred = _gold_as_pred(tmp_path)
    assert main(["--gold", str(gold), "--pred", str(pred), "--db", str(database), "--table",
                 str(MINI / "tables.json")]) == 2
    assert "it must be a SQLite database" in capsys.readouterr().err
