"""`RayPPOPolicy`: the GPU policy — verl's own `RayPPOTrainer` worker groups, vLLM rollout replicas and weight sync.

Where this sits (GPU path, `trainer.device=cuda`): task → store → runner → agent → proxy → **verl's vLLM rollout
replicas** → spans → adapter → verl batch → **verl's FSDP worker groups on Ray (update)** → **verl's checkpoint
engine (weights → replicas)** → next rollouts.

What it is: a `RayPPOTrainer` built the way verl's own `main_ppo` (v0 task runner, `BaseTaskRunner`) builds one —
`ActorRolloutRefWorker` / `TrainingWorker` Ray actors on a global pool of `trainer.n_gpus_per_node ×
trainer.nnodes` GPUs — then `init_workers()`: FSDP engines (parameter/optimizer offload, gradient checkpointing from
the config), vLLM replicas colocated with the actor (hybrid engine), verl's checkpoint engine. Instead of verl's
`fit()` and its prompt dataloader, `VerlAlgorithm` drives it, one seam per step:
- `base_urls()`: the replicas' OpenAI endpoints (`llm_server_manager.get_addresses()`), which go behind our LLM
  proxy so every agent call is recorded with token IDs;
- `release_rollout()`: `checkpoint_manager.sleep_replicas()` after the rollouts (frees the replicas' GPU memory for
  the update, as verl's `fit` does after generation);
- `step(batch)`: `PPOStep` — this class's own `_compute_old_log_prob`, `_update_actor`, ... on the worker groups;
- `push_weights(step)`: `checkpoint_manager.update_weights(step)` — verl's weight sync, which wakes the replicas with
  the new weights.

The replicas serve the model under `actor_rollout_ref.rollout.engine_kwargs.vllm.served_model_name` (the gpu preset
sets `policy`); tool-call flags for agents that send `tools` go in the same place (`enable_auto_tool_choice`,
`tool_call_parser`). Ray: an existing cluster (`ray start --head` / `--address` on the nodes; `trainer.nnodes=N`) or a
local one started here with verl's runtime environment.

Tested here without GPUs: the wiring (which verl calls happen, in which order, against which endpoints) with fakes
(tests/verl/test_ray_policy_wiring.py); a `gpu`-marked test builds the real thing where CUDA exists.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf

from agentlightning.verl.ppo_step import PPOStep

__all__ = ["RayPPOPolicy", "build_ray_trainer_parts"]

logger = logging.getLogger(__name__)


def build_ray_trainer_parts(config: DictConfig) -> dict[str, Any]:
    """Role → Ray worker class mapping, resource pools, worker-group class and tokenizer, as verl's `main_ppo` (v0
    task runner) builds them (its `BaseTaskRunner` methods, not a copy)."""
    from verl.trainer.main_ppo_v0 import BaseTaskRunner
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import HFModelConfig

    runner = BaseTaskRunner()
    _actor_cls, worker_group_cls = runner.add_actor_rollout_worker(config)
    from verl.trainer.ppo.utils import need_critic

    if need_critic(config):
        runner.add_critic_worker(config)
    runner.add_reward_model_resource_pool(config)
    model_config: HFModelConfig = omega_conf_to_dataclass(config.actor_rollout_ref.model)
    return {"role_worker_mapping": runner.role_worker_mapping,
            "resource_pool_manager": runner.init_resource_pool_mgr(config),
            "ray_worker_group_cls": worker_group_cls, "tokenizer": model_config.tokenizer,
            "processor": model_config.processor}


def _ensure_ray(config: DictConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    from verl.trainer.constants_ppo import get_ppo_ray_runtime_env

    init_kwargs = OmegaConf.to_container(config.get("ray_kwargs", {}).get("ray_init", {}), resolve=True) or {}
    runtime_env = OmegaConf.merge(get_ppo_ray_runtime_env(config), init_kwargs.pop("runtime_env", {}) or {})
    ray.init(runtime_env=OmegaConf.to_container(runtime_env), **init_kwargs)  # type: ignore[arg-type]


def _trainer_base() -> type:
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    return RayPPOTrainer


class RayPPOPolicy(PPOStep):
    """See the module docstring. `train_tasks`: the task list (verl's trainer sizes its LR schedule from it);
    `parts`: override `build_ray_trainer_parts(config)` (tests)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> RayPPOPolicy:
        # The RayPPOTrainer base is imported lazily (verl fixes its device at import time), so the concrete class is
        # made on first use: RayPPOPolicy's methods first, then verl's trainer.
        concrete = _concrete_class()
        return object.__new__(concrete)

    def __init__(self, config: DictConfig, train_tasks: list[Any], credit_assignment: str = "identical",
                 normalize_turns: bool = True, parts: dict[str, Any] | None = None) -> None:
        self.credit_assignment, self.normalize_turns = credit_assignment, normalize_turns
        if parts is None:
            _ensure_ray(config)
            parts = build_ray_trainer_parts(config)
        tasks = list(train_tasks)
        _trainer_base().__init__(self, config=config, tokenizer=parts["tokenizer"], processor=parts.get("processor"),
                                 role_worker_mapping=parts["role_worker_mapping"],
                                 resource_pool_manager=parts["resource_pool_manager"],
                                 ray_worker_group_cls=parts["ray_worker_group_cls"], train_dataset=tasks,
                                 val_dataset=tasks[:1], collate_fn=list)
        self.global_steps = 0
        self.init_workers()  # type: ignore[attr-defined]

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
                               "Fix: check actor_rollout_ref.rollout.name=vllm and the GPU count")
        urls = [a if a.startswith("http") else f"http://{a}" for a in (str(x).rstrip("/") for x in addresses)]
        return [u if u.endswith("/v1") else f"{u}/v1" for u in urls]

    def start(self, step: int) -> dict[str, float]:
        """Load the current (initial or resumed) weights into the replicas and wake them — verl's `fit` does this
        before anything else."""
        self.global_steps = step
        return self.push_weights(step)

    def release_rollout(self) -> None:
        """Free the replicas' GPU memory before the update (colocated hybrid engine)."""
        self.checkpoint_manager.sleep_replicas()  # type: ignore[attr-defined]

    def push_weights(self, step: int) -> dict[str, float]:
        """verl's weight sync from the actor worker group into the replicas (wakes them)."""
        import time

        started = time.perf_counter()
        self.checkpoint_manager.update_weights(step)  # type: ignore[attr-defined]
        return {"total": time.perf_counter() - started}

    def close(self) -> None:
        """Nothing to stop here: Ray actors end with the driver (or the Ray cluster's own lifecycle)."""


_CONCRETE: list[type] = []


def _concrete_class() -> type:
    if not _CONCRETE:
        _CONCRETE.append(type("RayPPOPolicy", (RayPPOPolicy, _trainer_base()), {"__module__": __name__,
                                                                                "__doc__": RayPPOPolicy.__doc__}))
    return _CONCRETE[0]
