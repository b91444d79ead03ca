"""`agl vllm serve MODEL [vLLM flags ...]`: run vLLM's OpenAI server in the foreground, token IDs guaranteed.

Where this sits: task → store → runner → agent → proxy → **vLLM** → spans → adapter → verl. This is how a person (or a
launcher script) starts the policy server by hand; `agentlightning.serving.VLLMServer` does the same from Python.

What it adds to plain vLLM: `instrument_vllm()` first (vLLM < 0.10.2 then runs in this process with the token-ID
patch; newer vLLM is exec'd as is, since `return_token_ids` is native), `--host 127.0.0.1` unless you pass `--host`,
the CPU defaults of `VLLMServer` on CPU machines (`VLLM_CPU_*` variables you have not set, `--enforce-eager`), and
`MODEL` may be `default` (the prepared SmolLM2-135M-Instruct folder, see `agl model`). Every other flag is passed to
vLLM unchanged, e.g.:

    agl vllm serve default --port 8000 --max-model-len 2048 --served-model-name policy \\
        --enable-auto-tool-choice --tool-call-parser hermes
    agl vllm serve Qwen/Qwen2.5-1.5B-Instruct --tensor-parallel-size 2 --gpu-memory-utilization 0.8
"""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import sys
from typing import Any

__all__ = ["add_parser", "resolve_model", "run"]

logger = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "vllm", help="run vLLM's OpenAI server with token IDs (agl vllm serve MODEL [vLLM flags])",
        description="vLLM helpers. `agl vllm serve MODEL [vLLM flags ...]` runs the OpenAI-compatible server in the "
        "foreground; see `agl vllm serve --help`.")
    sub = parser.add_subparsers(dest="vllm_command", metavar="<command>", required=True)
    serve = sub.add_parser(
        "serve", help="run vLLM's OpenAI server in the foreground",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\n\n", 1)[1] + "\nvLLM's own flags: python -m vllm.entrypoints.openai.api_server "
        "--help",
        usage="agl vllm serve MODEL [--print-command] [any vLLM flag ...]", allow_abbrev=False)
    serve.add_argument("model", help="HF folder or hub name; `default` = the prepared default model")
    serve.add_argument("--print-command", action="store_true",
                       help="print the command and environment additions instead of running them")
    serve.set_defaults(accepts_extra=True)


def resolve_model(model: str) -> str:
    """`default` → the prepared default model folder (error with the fix if it is not prepared)."""
    if model != "default":
        return model
    from agentlightning.models import default_model_path, is_prepared

    path = default_model_path()
    if not is_prepared(path):
        raise SystemExit(f"agl vllm serve: the default model is not prepared at {path}. "
                         "Fix: `agl model prepare` (or `make setup`)")
    return str(path)


def run(args: argparse.Namespace) -> int:
    from agentlightning.instrumentation import instrument_vllm
    from agentlightning.serving.vllm_server import VLLM_MODULE, build_vllm_command, cpu_env_defaults, is_cpu_platform

    model = resolve_model(args.model)
    extra = list(args.extra)
    cpu = is_cpu_platform()
    cmd = build_vllm_command(model, extra, host="127.0.0.1", cpu=cpu)
    env_added = cpu_env_defaults(os.environ) if cpu else {}
    if args.print_command:
        print(" ".join(f"{k}={v}" for k, v in env_added.items()), " ".join(cmd))
        return 0
    os.environ.update(env_added)
    mode = instrument_vllm()
    sys.stdout.flush()
    sys.stderr.flush()
    if mode == "patched":
        # The patch lives in this process, so the server must too: run vLLM's entry module here.
        sys.argv = [VLLM_MODULE, *cmd[3:]]
        runpy.run_module(VLLM_MODULE, run_name="__main__", alter_sys=True)
        return 0
    # Native token IDs: replace this process with vLLM (signals, exit code and Ctrl-C go straight to it).
    os.execv(cmd[0], cmd)
    return 0  # pragma: no cover - execv does not return
