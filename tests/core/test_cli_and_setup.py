"""The `agl` CLI (help, errors, a real `agl store` process) and the set-up script's checks."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentlightning.cli.main import build_parser, main
from agentlightning.store import LightningStoreClient

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_subcommands_and_each_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser, modules = build_parser()
    text = parser.format_help()
    for name in modules:
        assert name in text
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert "usage: agl " + name in capsys.readouterr().out


def test_cli_errors_name_the_problem(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="needs --path FILE"):
        main(["store", "--backend", "sqlite"])
    with pytest.raises(SystemExit):
        main(["store", "--backend", "nosuch"])
    assert "invalid choice: 'nosuch'" in capsys.readouterr().err
    assert main([]) == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_agl_store_process_serves_sqlite_with_token(tmp_path: Path) -> None:
    port = _free_port()
    db = tmp_path / "store.sqlite"
    cmd = [sys.executable, "-m", "agentlightning.cli.main", "store", "--backend", "sqlite", "--path", str(db),
           "--port", str(port), "--token", "t0k"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"listening on http://127.0.0.1:{port}" in line, line

        async def use() -> None:
            client = LightningStoreClient(f"http://127.0.0.1:{port}", token="t0k")
            rollout = await client.enqueue_rollout({"q": 1})
            assert (await client.get_rollout_by_id(rollout.rollout_id)).status == "queuing"
            await client.close()
            with pytest.raises(PermissionError):
                await LightningStoreClient(f"http://127.0.0.1:{port}").query_rollouts()

        asyncio.run(use())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert db.exists() and db.stat().st_size > 0


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "store.example.com"])
def test_agl_store_refuses_to_bind_beyond_loopback_without_a_token(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGL_STORE_TOKEN", raising=False)
    with pytest.raises(SystemExit, match=r"without a token.*Fix: .*--token.*--insecure") as exc:
        main(["store", "--host", host])
    assert host in str(exc.value.code)


def test_agl_store_binds_beyond_loopback_with_insecure(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "AGL_STORE_TOKEN"}
    cmd = [sys.executable, "-m", "agentlightning.cli.main", "store", "--host", "0.0.0.0", "--port", str(port),
           "--insecure"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert any("listening on" in line for line in lines), lines
        assert any("--insecure" in line and "anyone" in line for line in lines), lines

        async def use() -> None:
            client = LightningStoreClient(f"http://127.0.0.1:{port}")
            assert await client.query_rollouts() == []
            await client.close()

        asyncio.run(use())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _load_setup_module():  # scripts/setup.py is a script, not a package module
    spec = importlib.util.spec_from_file_location("agl_setup_script", ROOT / "scripts" / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_setup_refuses_low_disk_with_a_clear_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    setup = _load_setup_module()
    monkeypatch.setattr(setup, "PY", tmp_path / "no-venv" / "bin" / "python")
    monkeypatch.setattr(setup.shutil, "disk_usage", lambda _: type("U", (), {"free": 2 * 2**30})())
    with pytest.raises(setup.SetupError, match=r"only 2.0 GiB free.*Fix: free disk space"):
        setup._check_machine()


def test_setup_reports_an_os_error_without_a_traceback(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    setup = _load_setup_module()

    def full_disk() -> None:
        raise OSError(28, "No space left on device", "/work/.venv/lib")

    monkeypatch.setattr(setup, "_check_machine", full_disk)
    monkeypatch.setattr(sys, "argv", ["setup.py"])
    assert setup.main() == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "/work/.venv/lib" in err and "Fix: free disk space" in err
    assert "Traceback" not in err


@pytest.mark.skipif(not (ROOT / ".venv" / ".agl-setup-stamp").exists(), reason="needs `make setup` to have run")
def test_second_setup_run_is_a_quick_no_op() -> None:
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "setup.py")], capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    assert ".venv is up to date" in result.stdout and "default model ready" in result.stdout
    assert time.monotonic() - started < 15
