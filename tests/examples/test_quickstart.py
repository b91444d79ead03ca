"""Recipe test: the README's demo script, driven through its real entry point against the session's vLLM server."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.vllm
def test_quickstart_runs_end_to_end(vllm_server: Any, tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--vllm-url", vllm_server.base_url,
           "--served-model", vllm_server.model_name, "--tasks", "4", "--output", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("sum-")]
    assert len(rows) == 4 and all(" succeeded " in row for row in rows), result.stdout
    assert "accuracy" in result.stdout and (tmp_path / "store.sqlite").exists()


def _descendants_when(proc: subprocess.Popen[str], marker: str, at_least: int, timeout: float) -> list[Any]:
    """Read `proc`'s stdout until `marker`, then wait until it has `at_least` live descendants; return them."""
    import psutil

    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if marker in line:
            break
        assert time.monotonic() < deadline, f"{marker!r} not printed within {timeout} s"
    while time.monotonic() < deadline:
        children = psutil.Process(proc.pid).children(recursive=True)
        if len(children) >= at_least:
            return children
        time.sleep(0.5)
    raise AssertionError(f"fewer than {at_least} child processes after {timeout} s")


def _all_gone(children: list[Any], timeout: float) -> list[Any]:
    import psutil

    _gone, alive = psutil.wait_procs(children, timeout=timeout)
    for p in alive:  # don't leak them into the rest of the session, but report them
        p.kill()
    return alive


@pytest.mark.vllm
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM-own-vllm", "SIGINT"])
def test_a_killed_job_leaves_no_processes_behind(sig: signal.Signals, vllm_server: Any, tmp_path: Path) -> None:
    """SIGTERM on a job that started its own vLLM server and runner processes (no Python clean-up runs: atexit and
    `with` blocks are skipped), and Ctrl-C on one using a running server: everything the job started is gone within
    seconds (PR_SET_PDEATHSIG, and the pool's own shutdown on Ctrl-C), so a killed trainer never leaves a server
    holding the port and the RAM, or runners polling a dead store."""
    cmd = [sys.executable, "-u", str(ROOT / "examples" / "quickstart.py"), "--tasks", "64", "--output", str(tmp_path)]
    if sig == signal.SIGINT:
        cmd += ["--vllm-url", vllm_server.base_url, "--served-model", vllm_server.model_name]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        # two runner processes, plus vLLM (its API server and engine core) when the job started it
        children = _descendants_when(proc, "running 64 rollouts", 4 if sig == signal.SIGTERM else 2, timeout=240)
        time.sleep(3)  # runners are claiming rollouts and calling the model
        proc.send_signal(sig)
        proc.wait(timeout=60)
        alive = _all_gone(children, timeout=30)
        assert not alive, f"still running after {sig.name}: {[(p.pid, p.name()) for p in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()
