"""End-to-end CLI on the bundled mini-Spider, and its input-error messages."""

from __future__ import annotations

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
    assert "non-blank lines" in err and "one prediction per gold example" in err


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
