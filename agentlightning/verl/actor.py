"""The PPO/GRPO training step with verl's own code, driven in this process (the CPU path).

Where this sits: … triplets → verl batch → **old log-probs → (ref log-probs, values) → rewards/KL → advantages →
critic/actor update** → new weights (`weight_sync`) → vLLM.

What really runs: verl's `ActorRolloutRefWorker` (role `actor`, and `ref` when KL is configured) and a value-model
`TrainingWorker` (when the estimator is GAE) over verl's FSDP2 engine, with verl's `ppo_loss` / `value_loss`. The step
methods are verl's own `RayPPOTrainer._compute_old_log_prob`, `_compute_ref_log_prob`, `_compute_values`,
`_update_actor` and `_update_critic` (bound to this class: in one process the worker object stands in for the worker
group, same calls, same tensors), then verl's `apply_kl_penalty`, `compute_advantage` (GAE, GRPO, RLOO, ...) and
`compute_data_metrics`. Nothing here re-implements a loss or an estimator.

Why not `RayPPOTrainer.fit()` on CPU: it needs vLLM rollout replicas inside verl's worker group (verl registers only
vllm/sglang/trtllm rollouts) and its checkpoint engine to push weights; see the report in issue 5. On GPUs the
algorithm keeps verl's trainer; on CPU this class drives the same worker methods in-process.

The process group is a single-rank gloo group (world size 1); FSDP2 wraps the model as on one GPU.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from agentlightning.verl.batch import apply_rollout_level_advantages

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


def _verl_trainer_cls() -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from verl.trainer.ppo.ray_trainer import RayPPOTrainer
    return RayPPOTrainer


class InProcessPPO:
    """verl's actor (+ref, +critic) in this process; `step(batch)` is one PPO/GRPO update (see module docstring).

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

    # ------------------------------------------------------------------ the step
    @property
    def engine(self) -> Any:
        """verl's FSDP engine of the actor (its `module` is the FSDP2-wrapped HF model)."""
        return self.actor_rollout_wg.actor.engine

    def _prepare(self, batch: Any) -> Any:
        batch.meta_info["temperature"] = self.config.actor_rollout_ref.rollout.temperature
        batch.meta_info["global_token_num"] = torch.sum(batch.batch["attention_mask"], dim=-1).tolist()
        batch.meta_info["images_seqlens"] = []
        return batch

    def log_probs(self, batch: Any) -> torch.Tensor:
        """The current policy's log-probs of `batch`'s responses (B,R), padding 0 — verl's `compute_log_prob`."""
        old, _ = self._compute_old_log_prob(self._prepare(batch))
        return old.batch["old_log_probs"] * batch.batch["response_mask"]

    def step(self, batch: Any) -> dict[str, float]:
        """One update on `batch` (from `build_batch`); returns verl's metrics plus timings (`timing_s/*`)."""
        from verl.trainer.ppo.core_algos import agg_loss
        from verl.trainer.ppo.metric_utils import compute_data_metrics
        from verl.trainer.ppo.ray_trainer import apply_kl_penalty, compute_advantage
        from verl.utils.metric import reduce_metrics

        cfg, metrics, timing = self.config, {}, {}
        self.global_steps += 1
        batch = self._prepare(batch)
        with _timer(timing, "old_log_prob"):
            old, _mfu = self._compute_old_log_prob(batch)
            entropys = old.batch.pop("entropys")
            actor_cfg = cfg.actor_rollout_ref.actor
            metrics["actor/entropy"] = agg_loss(loss_mat=entropys, loss_mask=batch.batch["response_mask"],
                                                loss_agg_mode=actor_cfg.loss_agg_mode,
                                                loss_scale_factor=actor_cfg.loss_scale_factor).item()
            batch = batch.union(old)
        if self.use_reference_policy:
            with _timer(timing, "ref"):
                batch = batch.union(self._compute_ref_log_prob(batch))
        if self.use_critic:
            with _timer(timing, "values"):
                batch = batch.union(self._compute_values(batch))
        with _timer(timing, "adv"):
            if cfg.algorithm.use_kl_in_reward:
                batch, kl_metrics = apply_kl_penalty(batch, kl_ctrl=self.kl_ctrl_in_reward,
                                                     kl_penalty=cfg.algorithm.kl_penalty)
                metrics.update(kl_metrics)
            else:
                batch.batch["token_level_rewards"] = batch.batch["token_level_scores"]
            compute = partial(compute_advantage, adv_estimator=cfg.algorithm.adv_estimator, gamma=cfg.algorithm.gamma,
                              lam=cfg.algorithm.lam, num_repeat=cfg.actor_rollout_ref.rollout.n,
                              norm_adv_by_std_in_grpo=cfg.algorithm.get("norm_adv_by_std_in_grpo", True),
                              config=cfg.algorithm)
            if self.credit_assignment == "rollout_level":
                batch = apply_rollout_level_advantages(batch, compute, normalize_turns=self.normalize_turns)
            else:
                batch = compute(batch)
        batch, dropped = self._fit_mini_batches(batch)
        metrics["batch/dropped_for_mini_batches"] = dropped
        with self._mini_batch_config(len(batch)):
            if self.use_critic:
                with _timer(timing, "update_critic"):
                    metrics.update(reduce_metrics(self._update_critic(batch).meta_info["metrics"]))
            if cfg.trainer.critic_warmup <= self.global_steps:
                with _timer(timing, "update_actor"):
                    metrics.update(reduce_metrics(self._update_actor(batch).meta_info["metrics"]))
        metrics.update(compute_data_metrics(batch=batch, use_critic=self.use_critic))
        metrics.update({f"timing_s/{k}": v for k, v in timing.items()})
        self.last_batch = batch
        return {k: float(v) for k, v in metrics.items() if _is_number(v)}

    @property
    def num_mini_batches(self) -> int:
        """Updates per step: `data.train_batch_size // actor.ppo_mini_batch_size` (verl's meaning), at least 1."""
        cfg = self.config
        return max(1, int(cfg.data.train_batch_size) // int(cfg.actor_rollout_ref.actor.ppo_mini_batch_size))

    def _fit_mini_batches(self, batch: Any) -> tuple[Any, int]:
        """Agent rollouts give a variable number of samples (turns) per step, but verl's mini-batch iterator needs the
        batch size to divide evenly. Drop the `B mod k` samples (k = mini-batches per step) at random, counted."""
        k, size = self.num_mini_batches, len(batch)
        if size < k:
            raise ValueError(f"the batch has {size} samples but the config asks for {k} mini-batches per step "
                             "(data.train_batch_size // actor.ppo_mini_batch_size). Fix: lower the number of "
                             "mini-batches or collect more rollouts per step")
        extra = size % k
        if extra == 0:
            return batch, 0
        keep = np.sort(np.random.default_rng(self.global_steps).permutation(size)[: size - extra])
        return batch.select_idxs(keep), extra

    @contextlib.contextmanager
    def _mini_batch_config(self, size: int) -> Iterator[None]:
        """verl's `_update_actor` reads the mini-batch size as `ppo_mini_batch_size * rollout.n` (prompts × samples);
        our batch is already a flat list of samples, so for the update call it is `size / k` with n = 1."""
        original = self.config
        per_step = OmegaConf.create(OmegaConf.to_container(original, resolve=True))
        with open_dict(per_step):
            per_step.actor_rollout_ref.actor.ppo_mini_batch_size = size // self.num_mini_batches
            per_step.actor_rollout_ref.rollout.n = 1
            per_step.critic.ppo_mini_batch_size = size // self.num_mini_batches
        self.config = per_step
        try:
            yield
        finally:
            self.config = original

    # ------------------------------------------------------------------ weights and checkpoints
    def hf_state_dict(self) -> Iterator[tuple[str, torch.Tensor]]:
        """The actor's full weights with HF names (verl's `get_per_tensor_param`: what its rollout sync sends)."""
        params, _peft = self.engine.get_per_tensor_param()
        return iter(params)

    def save_checkpoint(self, folder: str | Path, step: int, max_to_keep: int | None = None) -> None:
        """verl's FSDP checkpoint (model, optimizer, lr scheduler, RNG) of the actor (and critic) into `folder`."""
        folder = Path(folder)
        self.actor_rollout_wg.save_checkpoint(str(folder / "actor"), global_step=step, max_ckpt_to_keep=max_to_keep)
        if self.use_critic:
            self.critic_wg.worker.save_checkpoint(str(folder / "critic"), global_step=step,
                                                  max_ckpt_to_keep=max_to_keep)

    def load_checkpoint(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.actor_rollout_wg.load_checkpoint(str(folder / "actor"))
        if self.use_critic:
            self.critic_wg.worker.load_checkpoint(str(folder / "critic"))


@contextlib.contextmanager
def _timer(timing: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timing[name] = timing.get(name, 0.0) + time.perf_counter() - started


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool)

