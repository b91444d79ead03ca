"""Metrics go through verl's own tracking as `trainer.logger` says: TensorBoard event files read back, W&B (offline)
run files, unknown or uninstalled backends explained; metrics.jsonl is written whatever the list; the held-out
table and the accuracy curve come from the same rows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agentlightning.verl.metrics import MetricsLogger, held_out, held_out_table, plot_reward_curve


def test_backend_list_is_verls() -> None:
    from verl.utils.tracking import Tracking

    from agentlightning.verl import metrics

    assert set(metrics._BACKEND_MODULES) == set(Tracking.supported_backend)


def test_tensorboard_event_file_reads_back(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert "TENSORBOARD_DIR" not in os.environ
    log = MetricsLogger(tmp_path, backends=["tensorboard"], project="p", experiment="e")
    log.log(1, {"reward/mean": 0.25, "accuracy": 0.5})
    log.log(2, {"reward/mean": 0.75, "accuracy": 1.0, "not_a_number": float("nan")})
    log.close()
    assert "TENSORBOARD_DIR" not in os.environ  # the default was set for the writer only
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("reward/mean")] == [(1, 0.25), (2, 0.75)]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"step": 1, "reward/mean": 0.25, "accuracy": 0.5}, {"step": 2, "reward/mean": 0.75,
                                                                         "accuracy": 1.0}]


def test_wandb_offline_writes_run_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("first", "second"):  # each run's files go to its own output folder (W&B caches its first settings)
        log = MetricsLogger(tmp_path / name, backends=["console", "wandb"], project="agl-test", experiment=name,
                            config={"trainer": {"project_name": "agl-test"}})
        log.log(1, {"reward/mean": 0.5})
        log.close()
        runs = list((tmp_path / name / "wandb").glob("offline-run-*"))
        assert len(runs) == 1 and list(runs[0].glob("run-*.wandb")), list((tmp_path / name).rglob("*"))
    assert "reward/mean" in capsys.readouterr().out  # verl's console backend printed the step


@pytest.mark.parametrize(("loggers", "message"), [
    ("[console,bogus]", "'bogus' is not one of verl's tracking backends"),
    ("[clearml]", "needs the 'clearml' package"),
])
def test_bad_logger_is_explained(loggers: str, message: str) -> None:
    from agentlightning.verl.config import compose_config

    with pytest.raises(ValueError, match=message) as info:
        compose_config("agentlightning", [f"trainer.logger={loggers}"])
    assert "Fix:" in str(info.value)


def test_held_out_table_and_curve_from_the_rows(tmp_path: Path) -> None:
    rows = [{"step": 0, "val/rollout/count": 4.0, "val/rollout/failed": 1.0, "val/accuracy": 0.25,
             "val/accuracy/easy": 0.5, "val/accuracy/hard": 0.0, "val/rollout/completion_tokens": 40.0,
             "val/agent/format_ok": 0.5, "val/reward/mean": 0.33},
            {"step": 1, "accuracy": 0.5, "timing_s/step": 3.0, "batch/num_samples": 8},
            {"step": 2, "accuracy": 0.75, "timing_s/step": 3.0, "batch/num_samples": 8, "val/rollout/count": 4.0,
             "val/rollout/failed": 0.0, "val/accuracy": 0.75, "val/accuracy/easy": 1.0, "val/accuracy/hard": 0.5,
             "val/rollout/completion_tokens": 20.0, "val/agent/format_ok": 1.0, "val/reward/mean": 0.75}]
    result = held_out(rows)
    assert result["before"]["accuracy"] == 0.25 and result["after"]["accuracy/hard"] == 0.5
    assert result["before"]["tokens/mean"] == 10.0 and result["after"]["step"] == 2.0
    table = held_out_table(result)
    assert "accuracy/easy" in table and "+0.500" in table and "agent/format_ok" in table
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    png = plot_reward_curve(path, tmp_path / "curve.png")
    assert png is not None and png.stat().st_size > 1000
    assert held_out([{"step": 1, "accuracy": 0.5}]) == {}
