"""One entry point: `python -m agentlightning.verl --config-name NAME` and the example scripts compose the same config
and build the same agent and tasks (agent and task factories get their config block); bad agent/task settings are
explained; every key of the `agentlightning:` block is read by the code (none is silently ignored)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig

from agentlightning.agent import LitAgent, rollout
from agentlightning.verl.config import CONFIG_DIR, AgentLightningConfig, compose_config, validate_config
from agentlightning.verl.entry import build_agent, load_tasks, task_splits

ROOT = CONFIG_DIR.parent


@rollout
def echo_agent(task: dict[str, Any], llm: Any) -> float:
    return 1.0


class ConfiguredAgent(LitAgent):
    def __init__(self, block: DictConfig | None = None) -> None:
        self.block = block


def tasks_factory(block: DictConfig, split: str) -> list[dict[str, Any]]:
    return [{"id": f"{split}-{i}", "n": i} for i in range(int(block.n_tasks))]


def _cfg(*overrides: str) -> tuple[Any, AgentLightningConfig]:
    cfg = compose_config("agentlightning", list(overrides))
    return cfg, validate_config(cfg)


def test_calc_x_and_spider_configs_build_their_agents_and_tasks() -> None:
    from examples.calc_x.agent import CalcXAgent
    from examples.spider.sql_agent import SQLAgent

    cfg = compose_config("calc_x", ["calc_x.max_turns=2", "calc_x.val_size=5"])
    agl = validate_config(cfg)
    agent = build_agent(cfg, agl)
    assert isinstance(agent, CalcXAgent) and agent.max_turns == 2
    train, val = task_splits(cfg, agl)
    assert len(val) == 5 and {t["difficulty"] for t in train} == {"word1", "word2"}  # train_difficulties
    cfg = compose_config("spider", ["spider.max_turns=2", "spider.train_size=3", "spider.val_size=2"])
    agl = validate_config(cfg)
    agent = build_agent(cfg, agl)
    assert isinstance(agent, SQLAgent) and agent.max_turns == 2
    train, val = task_splits(cfg, agl)
    assert (len(train), len(val)) == (3, 2) and train[0]["id"] == "train-0" and val[0]["id"] == "dev-0"


def test_agent_specs(tmp_path: Path) -> None:
    here = "tests.verl.test_entry"
    cfg, agl = _cfg(f"agentlightning.agent={here}:echo_agent")
    assert build_agent(cfg, agl) is echo_agent
    cfg, agl = _cfg(f"agentlightning.agent={here}:ConfiguredAgent", "agentlightning.agent_config=data")
    agent = build_agent(cfg, agl)
    assert isinstance(agent, ConfiguredAgent) and agent.block is cfg.data  # the factory got its block
    for overrides, message in [
        ([f"agentlightning.agent={here}:echo_agent", "agentlightning.agent_config=data"], "not a factory"),
        ([f"agentlightning.agent={here}:tasks_factory"], "not a LitAgent"),
        ([f"agentlightning.agent={here}:ConfiguredAgent", "agentlightning.agent_config=nope"], "no block"),
        (["agentlightning.agent=no_such_module_xyz:agent"], "cannot be imported"),
        ([f"agentlightning.agent={here}:missing"], "has no attribute 'missing'"),
        ([], "agentlightning.agent is not set"),
    ]:
        cfg, agl = _cfg(*overrides)
        with pytest.raises(ValueError, match=message) as info:
            build_agent(cfg, agl)
        assert "Fix:" in str(info.value)


def test_task_sources(tmp_path: Path) -> None:
    cfg, agl = _cfg("agentlightning.tasks=tests.verl.test_entry:tasks_factory", "agentlightning.agent_config=ours",
                    "+ours.n_tasks=3")
    train, val = task_splits(cfg, agl)
    assert [t["id"] for t in train] == ["train-0", "train-1", "train-2"] and val[0]["id"] == "val-0"
    (tmp_path / "t.jsonl").write_text('{"id": 1}\n\n{"id": 2}\n')
    (tmp_path / "t.json").write_text('[{"id": 1}]')
    cfg, agl = _cfg(f"agentlightning.train_data={tmp_path / 't.jsonl'}",
                    f"agentlightning.val_data={tmp_path / 't.json'}")
    assert task_splits(cfg, agl) == ([{"id": 1}, {"id": 2}], [{"id": 1}])
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n{"id": \n')
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "dict.json").write_text('{"id": 1}')
    for name, message in [("bad.jsonl", "line 2: not JSON"), ("empty.jsonl", "holds no tasks"),
                          ("dict.json", "holds a dict"), ("missing.jsonl", "no such file")]:
        with pytest.raises((ValueError, FileNotFoundError), match=message) as info:
            load_tasks(str(tmp_path / name))
        assert "Fix:" in str(info.value)
    with pytest.raises(ValueError, match="train_data is not set"):
        task_splits(*_cfg())
    with pytest.raises(ValueError, match="would be ignored"):
        _cfg("agentlightning.tasks=a.b:c", "agentlightning.train_data=x.jsonl")


def test_every_agentlightning_key_is_read() -> None:
    """No silent keys: each field of the block is used somewhere outside its own definition and checks."""
    sources = "\n".join(p.read_text() for p in (ROOT / "agentlightning").rglob("*.py") if p.name != "config.py")
    composed = set(compose_config("calc_x").agentlightning)
    for name in AgentLightningConfig.__dataclass_fields__:
        assert name in composed, f"agentlightning.{name} is missing from configs/base.yaml"
        if name == "preset":  # read by validate_config's cross-checks (config.py)
            continue
        assert re.search(rf"\bagl\.{name}\b", sources), f"agentlightning.{name} is never read"


@pytest.mark.parametrize("name", ["calc_x", "spider"])
def test_example_script_is_the_entry_point(name: str) -> None:
    """`python -m agentlightning.verl --config-name NAME` and the example script print the same composed config."""
    script = {"calc_x": "examples/calc_x/train_calc_agent.py", "spider": "examples/spider/train_sql_agent.py"}[name]
    args = ["--cfg", "job", "trainer.total_training_steps=3"]
    outputs = []
    for cmd in ([sys.executable, "-m", "agentlightning.verl", "--config-name", name, *args],
                [sys.executable, str(ROOT / script), *args]):
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd="/")  # from any directory
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] and f"agent_config: {name}" in outputs[0]


def test_cfg_job_validates_like_training() -> None:
    """`--cfg job` runs the same validation as training (Hydra alone would print any value and exit 0)."""
    for args, message in [(["agentlightning.runner_concurrency=1.5"], "runner_concurrency=1.5: must be int"),
                          (["--config-name", "agentlightning", "agentlightning.train_data=/nonexistent.jsonl"],
                           "no such file")]:
        result = subprocess.run([sys.executable, "-m", "agentlightning.verl", "--cfg", "job", *args],
                                capture_output=True, text=True, timeout=180, cwd=ROOT)
        assert result.returncode == 1 and message in result.stderr and "Fix:" in result.stderr, result.stderr[-800:]


def test_cpu_preset_values_live_in_one_place() -> None:
    from agentlightning.models import DEFAULT_MAX_MODEL_LEN
    from agentlightning.verl.algorithm import SERVED_NAME

    cfg = compose_config("calc_x")
    assert cfg.actor_rollout_ref.rollout.max_model_len == DEFAULT_MAX_MODEL_LEN
    assert cfg.actor_rollout_ref.rollout.engine_kwargs.vllm.served_model_name == SERVED_NAME


def test_sigterm_stops_a_run_as_ctrl_c_does() -> None:
    """`kill PID` on a training run raises KeyboardInterrupt inside `train`'s fit, so its clean-up runs; the
    previous handler is back afterwards."""
    import os
    import signal
    import time

    from agentlightning.verl.entry import sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
    assert signal.getsignal(signal.SIGTERM) is before
