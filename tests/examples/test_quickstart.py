"""Recipe test: the README's demo script, driven through its real entry point against the session's vLLM server."""

from __future__ import annotations

import subprocess
import sys
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
