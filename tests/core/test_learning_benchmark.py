"""benchmarks/learning.py's tables, from step records written the way the trainer writes them (hand-made here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("learning_bench", ROOT / "benchmarks" / "learning.py")
learning = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(learning)  # type: ignore[union-attr]


def _step(folder: Path, step: int, groups: dict[tuple[str, str, int], list[float | None]]) -> None:
    rollouts = [{"data_id": data_id, "group": group, "gen_batch": gen_batch, "reward": reward}
                for (group, data_id, gen_batch), rewards in groups.items() for reward in rewards]
    (folder / "steps").mkdir(parents=True, exist_ok=True)
    (folder / "steps" / f"step_{step:06d}.json").write_text(json.dumps({"step": step, "rollouts": rollouts}))


def test_signal_counts_groups_by_reward_variance_per_difficulty(tmp_path: Path) -> None:
    _step(tmp_path, 1, {("word1", "t1", 1): [1.0, 0.0], ("word2", "t2", 1): [0.0, None],
                        ("word2", "t3", 2): [1.0, 1.0]})
    _step(tmp_path, 2, {("word1", "t1", 1): [1.0, 1.0], ("word2", "t2", 1): [0.0, 1.0]})
    counts = learning.signal(tmp_path)
    assert counts == {"word1": {"mixed": 1, "all_right": 1, "all_wrong": 0},
                      "word2": {"mixed": 1, "all_right": 1, "all_wrong": 1}}
    table = learning.signal_report([{"seed": 7, "signal": counts}]).splitlines()
    assert table[1].split() == ["7", "word1", "2", "1", "1", "0"]
    assert table[2].split() == ["7", "word2", "3", "1", "1", "1"]


def test_report_states_each_target_with_its_worst_value() -> None:
    def result(seed: int, after: float, word2_after: float, minutes: float) -> dict:
        before = {"accuracy": 0.72, "accuracy/word2": 0.1}
        return {"seed": seed, "before": before, "after": {"accuracy": after, "accuracy/word2": word2_after},
                "wall_s": 60 * minutes, "steps": 10, "samples": 280}

    text = learning.report([result(1, 0.87, 0.38, 17.0), result(2, 0.86, 0.05, 21.5)])
    rows = text.splitlines()
    assert rows[1].split()[:4] == ["1", "72.0", "87.0", "+15.0"]
    assert "+14.5" in rows[3]  # mean change
    assert text.splitlines()[-1] == ("targets: every seed >= +10 (worst +14.0), mean >= +15 (+14.5), no difficulty "
                                     "below -3 (worst -5.0), each run <= 30 min (longest 21.5)")


def test_report_names_the_step_whose_weights_were_validated_last() -> None:
    def result(seed: int, after: dict) -> dict:
        return {"seed": seed, "before": {"accuracy": 0.72, "step": 0.0}, "after": {"accuracy": 0.86, **after},
                "wall_s": 600.0, "steps": 10, "samples": 280}

    rows = learning.report([result(1, {"step": 10.0, "weights_step": 6.0}), result(2, {"step": 10.0}),
                            result(3, {})]).splitlines()
    assert rows[0].split()[-1] == "weights"
    assert [row.split()[-1] for row in rows[1:4]] == ["6", "10", "10"]  # selection restored step 6; the others: last


def test_a_stopped_measurement_keeps_its_finished_seeds_for_report(tmp_path: Path, monkeypatch, capsys) -> None:
    """learning.json is written after each seed: a measurement stopped (or failed) at seed 2 still reports seed 1.
    run_seed is replaced by a FAKE that returns a finished seed's record (the real one trains for ~20 min)."""
    def fake_run_seed(seed: int, out: Path, overrides: list[str]) -> dict:
        if seed == 2:
            raise SystemExit("seed 2: the training run failed (exit 1)")
        return {"seed": seed, "before": {"accuracy": 0.72}, "after": {"accuracy": 0.87, "step": 10.0},
                "wall_s": 1080.0, "steps": 10, "samples": 280, "signal": {}}

    monkeypatch.setattr(learning, "run_seed", fake_run_seed)
    with pytest.raises(SystemExit, match="seed 2: the training run failed"):
        learning.main(["--seeds", "1", "2", "--out", str(tmp_path)])
    capsys.readouterr()
    results = learning.main(["--report", "--out", str(tmp_path)])
    assert [r["seed"] for r in results] == [1]
    assert capsys.readouterr().out.splitlines()[1].split()[:4] == ["1", "72.0", "87.0", "+15.0"]


def test_report_on_a_folder_without_a_measurement_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no learning\.json there .* Fix: --out the folder a `learning\.py` run "
                                         r"wrote"):
        learning.main(["--report", "--out", str(tmp_path)])
