"""VLLMServer without vLLM: command building, CPU defaults, start-up failures (with the log tail), tree kill."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from agentlightning.cli.main import main as agl
from agentlightning.serving import VLLMServer, VLLMServerError, build_vllm_command, cpu_env_defaults, serving_dtype


def test_command_passes_flags_through_and_adds_loopback_defaults() -> None:
    extra = ["--max-model-len", "2048", "--tensor-parallel-size", "2", "--enable-auto-tool-choice",
             "--tool-call-parser", "hermes"]
    cmd = build_vllm_command("/m", extra, host="127.0.0.1", port=8123, served_model_name="p", cpu=True)
    assert cmd[:5] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", "/m"]
    assert cmd[-len(extra):] == extra
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "8123"
    assert cmd[cmd.index("--served-model-name") + 1] == "p" and "--enforce-eager" in cmd
    assert "--enforce-eager" not in build_vllm_command("/m", [], cpu=False)
    assert build_vllm_command("/m", ["--host=0.0.0.0"], cpu=True).count("--host") == 0
    assert "--enforce-eager" not in build_vllm_command("/m", ["--compilation-config", "{}"], cpu=True)


def test_cpu_serves_float32_unless_dtype_given() -> None:
    cmd = build_vllm_command("/m", [], cpu=True)
    assert cmd[cmd.index("--dtype") + 1] == "float32"
    given = build_vllm_command("/m", ["--dtype", "bfloat16"], cpu=True)
    assert given.count("--dtype") == 1 and given[given.index("--dtype") + 1] == "bfloat16"
    assert "--dtype" not in build_vllm_command("/m", [], cpu=False)
    assert serving_dtype([], cpu=True) == "float32" and serving_dtype([], cpu=False) == "auto"
    assert serving_dtype(["--dtype=half"], cpu=True) == "half"


def test_cpu_env_defaults_never_override() -> None:
    assert cpu_env_defaults({})["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert "VLLM_CPU_KVCACHE_SPACE" not in cpu_env_defaults({"VLLM_CPU_KVCACHE_SPACE": "4"})
    server = VLLMServer("/m", env={"VLLM_CPU_KVCACHE_SPACE": "3"})
    assert server.environment()["VLLM_CPU_KVCACHE_SPACE"] == "3"


def test_properties_and_validation() -> None:
    server = VLLMServer("/m", port=8000, extra_args=["--served-model-name", "pol"])
    assert server.url == "http://127.0.0.1:8000" and server.base_url == "http://127.0.0.1:8000/v1"
    assert server.model_name == "pol" and server.pid is None
    assert VLLMServer("/m").model_name == "/m"
    with pytest.raises(ValueError, match="--host/--port"):
        VLLMServer("/m", extra_args=["--port", "1"])
    with pytest.raises(ValueError, match="startup_timeout=0"):
        VLLMServer("/m", startup_timeout=0)
    with pytest.raises(RuntimeError, match="start"):
        _ = VLLMServer("/m").url


def _scripted(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    monkeypatch.setattr(VLLMServer, "command", lambda self: [sys.executable, "-c", code])


def test_process_that_dies_raises_with_log_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    _scripted(monkeypatch, "import sys\nfor i in range(100): print('line', i)\nprint('ValueError: no such model')\n"
                           "sys.exit(3)")
    server = VLLMServer("/nope", startup_timeout=30)
    with pytest.raises(VLLMServerError) as info:
        server.start()
    message = str(info.value)
    assert "exited with code 3" in message and "no such model" in message and "line 99" in message
    assert "line 10\n" not in message  # only the tail
    assert not server.running and Path(server.log_path).exists()


def test_timeout_kills_the_whole_process_group(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    _scripted(monkeypatch, "import subprocess, sys, time\n"
                           "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
                           f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
                           "print('loading weights...', flush=True)\ntime.sleep(120)")
    server = VLLMServer("/m", startup_timeout=2, stop_timeout=3)
    started = time.monotonic()
    with pytest.raises(VLLMServerError, match="startup_timeout=2") as info:
        server.start()
    assert "loading weights" in str(info.value)
    assert time.monotonic() - started < 15
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5  # the group's SIGKILL is delivered asynchronously: give the kernel a moment
    while not _gone(child):
        assert time.monotonic() < deadline, "the server's child outlived the process-group kill"
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_context_manager_stops_on_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    # A tiny stand-in that answers /health, so start() succeeds without vLLM.
    code = ("import http.server, sys\nclass H(http.server.BaseHTTPRequestHandler):\n"
            "    def do_GET(self):\n        self.send_response(200); self.end_headers()\n"
            "    def log_message(self, *a): pass\n"
            "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()")
    monkeypatch.setattr(VLLMServer, "command", lambda self: [sys.executable, "-c", code, str(self.port)])
    with VLLMServer("/m", startup_timeout=20) as server:
        pid = server.pid
        assert server.running and psutil.pid_exists(pid)
    assert not server.running
    with pytest.raises(psutil.NoSuchProcess):
        psutil.Process(pid).status()


def test_cli_vllm_serve_passes_flags_unchanged(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    flags = ["--tensor-parallel-size", "1", "--max-model-len", "1024", "--enable-auto-tool-choice",
             "--tool-call-parser", "hermes", "--served-model-name", "policy", "--port", "8011"]
    assert agl(["vllm", "serve", "/some/model", "--print-command", *flags]) == 0
    out = capsys.readouterr().out
    assert " ".join(flags) in out and "--host 127.0.0.1" in out and "--model /some/model" in out
    assert agl(["vllm", "serve", "default", "--print-command"]) == 0  # the model `make setup` prepared
    assert "SmolLM2-135M-Instruct" in capsys.readouterr().out
    monkeypatch.setenv("AGL_HOME", "/nonexistent-agl-home")
    with pytest.raises(SystemExit, match="agl model prepare"):
        agl(["vllm", "serve", "default"])


def test_cli_help_texts() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    for args in (["vllm", "serve", "--help"], ["proxy", "--help"]):
        out = subprocess.run([sys.executable, "-m", "agentlightning.cli.main", *args], capture_output=True,
                             text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "127.0.0.1" in out.stdout


def test_server_dies_with_a_killed_parent(tmp_path: Path) -> None:
    # The parent is SIGKILLed (no atexit, no finally): the 'server' must not be left running as an orphan.
    pid_file = tmp_path / "server.pid"
    parent = ("import sys, time\nfrom agentlightning.serving import VLLMServer\n"
              "VLLMServer.command = lambda self: [sys.executable, '-c', 'import time; time.sleep(120)']\n"
              "s = VLLMServer('/m', startup_timeout=60)\n"
              "import threading; threading.Thread(target=s.start, daemon=True).start()\n"
              f"time.sleep(1.5); open({str(pid_file)!r}, 'w').write(str(s.pid)); time.sleep(120)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", parent], env=env)
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    server_pid = int(pid_file.read_text())
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while psutil.pid_exists(server_pid) and time.monotonic() < deadline:
        if psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.1)
    assert not psutil.pid_exists(server_pid) or psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE
