"""`RunnerPool`: many runner loops (`agentlightning.runner.worker_loop`) in worker processes or Ray actors.

Where this sits: store (served over HTTP) → **runner pool** → agent → proxy → vLLM.

- `backend="process"`: each worker is a fresh `python -m agentlightning.runner_pool` process that talks to the store
  over HTTP. As with multiprocessing, a script that defines its agent needs the usual `if __name__ == "__main__":`
  guard (the worker loads it as `__mp_main__`). The agent (with the trainer's `Tracer`, if any, and the
  `RunnerConfig`) travels as a cloudpickle file; the agent's own modules are first loaded from their files in the
  worker (`preload_user_modules`). Each worker logs to `<log_dir>/<worker_id>.log`.
- `backend="ray"`: each worker is a Ray actor, so runners can live on any node of a Ray cluster (serve the store on
  an address those nodes reach, with a token).

Faults: a worker that dies (even by SIGKILL) stops heartbeating; the store marks its attempt `unresponsive` after
`unresponsive_seconds` and requeues the rollout; the pool starts a replacement. A worker that keeps dying right after
start (a crash loop: bad agent, import error) is not restarted forever: `check()` raises `RunnerCrashError` with the
causes it saw and the end of the last log. Only deaths a restart cannot cure count towards it — the agent could not
be loaded (exit code 3), the store refused the worker (exit code 4: a wrong token, say), or another error — never a
worker killed by a signal (someone else's SIGKILL, the OOM killer) and never an unreachable store (a worker waits for
the store with back-off and does not exit). Shutdown (`stop()`, or SIGINT/SIGTERM to a worker): workers cancel their agent, requeue their claimed
rollout and exit; the pool then kills whatever is left — no orphans.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Literal

import cloudpickle

from agentlightning.agent import LitAgent, live_agent_threads
from agentlightning.runner import RunnerConfig, worker_loop
from agentlightning.serving.vllm_server import die_with_parent
from agentlightning.tracer import Tracer

__all__ = ["EXIT_AGENT_LOAD", "EXIT_STORE_REFUSED", "RunnerCrashError", "RunnerPool", "death_cause",
           "preload_user_modules"]

logger = logging.getLogger(__name__)

_SITE_DIRS = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib")}


class RunnerCrashError(RuntimeError):
    """Runner workers keep dying right after they start; the message says why (as far as the exit codes tell) and
    has the end of the last one's log."""


EXIT_AGENT_LOAD = 3  # the worker could not load the agent (import error, unpicklable agent, missing module file)
EXIT_STORE_REFUSED = 4  # the store refused the worker for a reason retrying cannot fix (a wrong token, say)


def death_cause(returncode: int) -> str:
    """A worker's exit code in words: what killed it."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name} (from outside: not its agent's fault)"
    return {EXIT_AGENT_LOAD: "the agent could not be loaded (exit code 3)",
            EXIT_STORE_REFUSED: "the store refused the worker (exit code 4)"}.get(
        returncode, f"exited with code {returncode}")


def _user_modules(agent: LitAgent) -> list[tuple[str, str]]:
    """(module name, file) of the user code that defines the agent: anything not installed in site-packages or the
    stdlib (a script, a notebook's file, a test, an example folder)."""
    found: list[tuple[str, str]] = []
    for obj in (type(agent), getattr(agent, "fn", None)):
        module = sys.modules.get(getattr(obj, "__module__", "") or "")
        origin = getattr(module, "__file__", None)
        if module is None or module.__name__.startswith("agentlightning") or origin is None:
            continue
        if not any(str(Path(origin).resolve()).startswith(str(Path(d).resolve())) for d in _SITE_DIRS):
            if (module.__name__, origin) not in found:
                found.append((module.__name__, origin))
    return found


def preload_user_modules(modules: list[tuple[str, str]]) -> None:
    """In a worker: load the agent's own modules from their files, under their names, before unpickling the agent.

    The agent's code then refers to real modules with all their globals (LangGraph resolves `from __future__ import
    annotations` type hints through `sys.modules[cls.__module__]`), even when the name is not importable from a fresh
    process (a test file, or a `tests` package shadowed by one in site-packages). A script (`__main__`) is loaded as
    `__mp_main__`, so — as with multiprocessing — code under `if __name__ == "__main__":` does not run again."""
    import importlib.util

    for name, path in modules:
        load_as = "__mp_main__" if name == "__main__" else name
        if load_as in sys.modules and getattr(sys.modules[load_as], "__file__", None) == path:
            continue
        spec = importlib.util.spec_from_file_location(load_as, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load the agent's module {name!r} from {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[load_as] = module
        if name == "__main__":
            sys.modules["__main__"] = module  # objects pickled from the user's __main__ resolve against it
        spec.loader.exec_module(module)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class RunnerPool:
    """See the module docstring. Use as a context manager or `start()` / `stop()`."""

    def __init__(self, agent: LitAgent, store_url: str, n_runners: int = 2,
                 backend: Literal["process", "ray"] = "process", token: str | None = None,
                 config: RunnerConfig | None = None, restart_dead: bool = True, log_dir: str | Path | None = None,
                 crash_window_seconds: float = 20.0, max_quick_crashes: int = 3, tracer: Tracer | None = None
                 ) -> None:
        if n_runners < 1:
            raise ValueError(f"n_runners={n_runners} must be >= 1")
        if backend not in ("process", "ray"):
            raise ValueError(f"runner backend {backend!r} is not one of 'process', 'ray'")
        if not isinstance(agent, LitAgent):
            raise TypeError(f"agent {agent!r} is not a LitAgent; subclass LitAgent or decorate a function with @rollout")
        self.store_url, self.n_runners, self.backend, self.token = store_url, n_runners, backend, token
        self.config, self.restart_dead = config or RunnerConfig(), restart_dead
        self.crash_window_seconds, self.max_quick_crashes = crash_window_seconds, max_quick_crashes
        self._own_log_dir = log_dir is None  # a temp folder we remove after a clean stop
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="agl-runners-"))
        self._agent_bytes = cloudpickle.dumps((agent, tracer, self.config))  # what a worker rebuilds
        self._preload = _user_modules(agent)
        self._procs: dict[str, tuple[subprocess.Popen[bytes], float]] = {}
        self._actors: list[Any] = []
        self._ray_runs: list[Any] = []
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        self._quick_crashes = 0
        self._causes: list[str] = []
        self._crash: RunnerCrashError | None = None
        self.restarts = 0

    # ------------------------------------------------------------------ processes
    def _spawn(self, worker_id: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        if self.token:
            env["AGL_STORE_TOKEN"] = self.token
        cmd = [sys.executable, "-m", "agentlightning.runner_pool", "--agent-file", str(self._agent_file),
               "--store", self.store_url, "--worker-id", worker_id,
               "--log-level", str(logging.getLogger().getEffectiveLevel())]
        for name, path in self._preload:
            cmd += ["--preload", f"{name}={path}"]
        with open(self.log_dir / f"{worker_id}.log", "ab") as log:
            # Workers die with the pool's thread (PR_SET_PDEATHSIG): a trainer killed by a signal leaves no orphans.
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                    preexec_fn=die_with_parent)
        self._procs[worker_id] = (proc, time.monotonic())

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            for worker_id, (proc, started) in list(self._procs.items()):
                if proc.poll() is None or self._stopping.is_set():
                    continue
                del self._procs[worker_id]
                log = self.log_dir / f"{worker_id}.log"
                cause = death_cause(proc.returncode)
                # a kill from outside says nothing about the agent: it never counts towards a crash loop
                quick = proc.returncode >= 0 and time.monotonic() - started < self.crash_window_seconds
                self._quick_crashes = self._quick_crashes + 1 if quick else 0
                self._causes = [*self._causes, cause][-self.max_quick_crashes:] if quick else []
                if self._quick_crashes >= self.max_quick_crashes:
                    seen = "; ".join(f"{c} x{self._causes.count(c)}" for c in dict.fromkeys(self._causes))
                    self._crash = RunnerCrashError(
                        f"runner workers died {self._quick_crashes} times within {self.crash_window_seconds:.0f} s "
                        f"of starting ({seen}); not restarting. Last log ({log}):\n{_tail(log)}")
                    logger.error("%s", self._crash)
                    continue
                logger.warning("runner %s died: %s (log %s); its rollout is requeued once it misses heartbeats%s",
                               worker_id, cause, log, "; starting a replacement" if self.restart_dead else "")
                if self.restart_dead:
                    self.restarts += 1
                    self._spawn(f"{worker_id.split('.')[0]}.{self.restarts}")

    def check(self) -> None:
        """Raise `RunnerCrashError` if the workers are in a crash loop (callers poll this while waiting)."""
        if self._crash is not None:
            raise self._crash

    def pids(self) -> dict[str, int]:
        return {worker_id: proc.pid for worker_id, (proc, _) in self._procs.items()}

    def start(self) -> RunnerPool:
        if self.backend == "ray":
            self._start_ray()
            return self
        self.log_dir.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix="agent-", suffix=".pkl", dir=self.log_dir)
        with os.fdopen(handle, "wb") as f:
            f.write(self._agent_bytes)
        self._agent_file = Path(name)
        for i in range(self.n_runners):
            self._spawn(f"runner-{i}")
        self._monitor = threading.Thread(target=self._watch, name="agl-runner-monitor", daemon=True)
        self._monitor.start()
        logger.info("started %d runner processes against %s (logs in %s)", self.n_runners, self.store_url,
                    self.log_dir)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Ask every worker to stop (they requeue in-flight rollouts), then make sure none is left."""
        self._stopping.set()
        if self.backend == "ray":
            self._stop_ray(timeout)
            return
        for proc, _ in self._procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for worker_id, (proc, _) in self._procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("runner %s did not exit in %.0f s; killing it", worker_id, timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self._procs.clear()
        if self._own_log_dir and self.restarts == 0 and self._crash is None:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    # ------------------------------------------------------------------ Ray
    def _start_ray(self) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(ignore_reinit_error=True, include_dashboard=False)
        # runners are pinned round-robin to the cluster's nodes, so their rollouts' CPU work is spread too (a soft
        # affinity, or SPREAD, put both runners of a 2-node test cluster on one node in 1 run of 3)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [node["NodeID"] for node in ray.nodes() if node.get("Alive")]
        actor_cls = ray.remote(num_cpus=0, max_concurrency=2)(_RayRunner)
        self._actors = [actor_cls.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            node_id=nodes[i % len(nodes)], soft=False)).remote() for i in range(self.n_runners)]
        self._ray_runs = [a.run.remote(self._agent_bytes, self._preload, self.store_url, self.token,
                                       f"ray-runner-{i}") for i, a in enumerate(self._actors)]
        logger.info("started %d Ray runner actors against %s", self.n_runners, self.store_url)

    def _stop_ray(self, timeout: float) -> None:
        import ray

        with contextlib.suppress(Exception):
            ray.get([a.stop.remote() for a in self._actors], timeout=timeout)
            ray.get(self._ray_runs, timeout=timeout)
        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self._actors, self._ray_runs = [], []

    def __enter__(self) -> RunnerPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _serve(agent: LitAgent, tracer: Tracer | None, store_url: str, token: str | None, worker_id: str,
                 config: RunnerConfig, stop: asyncio.Event) -> int:
    from agentlightning.store.client import LightningStoreClient

    client = LightningStoreClient(store_url, token=token)
    try:
        return await worker_loop(client, agent, worker_id, stop, config, tracer)
    finally:
        await client.close()


class _RayRunner:
    """A Ray actor hosting one worker loop (wrapped with `ray.remote` at start, so Ray stays an optional import)."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def run(self, agent_bytes: bytes, preload: list[tuple[str, str]], store_url: str, token: str | None,
            worker_id: str) -> int:
        import ray

        worker_id = f"{worker_id}@{ray.get_runtime_context().get_node_id()}"  # attempts name the node that ran them
        preload_user_modules(preload)
        agent, tracer, config = cloudpickle.loads(agent_bytes)

        async def main() -> int:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            threading.Thread(target=lambda: (self._stop.wait(), loop.call_soon_threadsafe(stop.set)),
                             daemon=True).start()
            return await _serve(agent, tracer, store_url, token, worker_id, config, stop)

        return asyncio.run(main())

    def stop(self) -> None:
        self._stop.set()


def main(argv: list[str] | None = None) -> int:
    """Entry point of one worker process (started by `RunnerPool`)."""
    parser = argparse.ArgumentParser(description="one agentlightning runner worker (started by RunnerPool)")
    parser.add_argument("--agent-file", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--log-level", type=int, default=logging.INFO)
    parser.add_argument("--preload", action="append", default=[], help="NAME=FILE of the agent's own modules")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format=f"%(asctime)s {args.worker_id} %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger(__name__)
    try:
        preload_user_modules([tuple(item.split("=", 1)) for item in args.preload])  # type: ignore[misc]
        agent, tracer, config = cloudpickle.loads(Path(args.agent_file).read_bytes())
    except Exception:  # noqa: BLE001 - any failure here is the agent's: say so by the exit code
        log.exception("worker %s: could not load the agent", args.worker_id)
        return EXIT_AGENT_LOAD

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await _serve(agent, tracer, args.store, os.environ.get("AGL_STORE_TOKEN"), args.worker_id, config,
                            stop)

    from agentlightning.store.base import StoreError

    try:
        count = asyncio.run(run())
    except (StoreError, PermissionError) as exc:  # not "unreachable" (waited out by the loop): e.g. a wrong token
        log.error("worker %s: the store refused this worker: %s", args.worker_id, exc)
        return EXIT_STORE_REFUSED
    log.info("worker %s ran %d rollouts; exiting", args.worker_id, count)
    if (stuck := live_agent_threads()):  # cancelled sync agents (e.g. inside time.sleep): Python would join them
        log.warning("worker %s: %d sync agent call(s) were cancelled but are still running in their threads (a thread "
                    "cannot be interrupted; their rollouts were given back); exiting without them", args.worker_id,
                    stuck)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
