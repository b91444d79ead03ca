"""One PPO/GRPO update on an agent batch, with verl's own step methods — shared by the CPU and the GPU policy.

Where this sits: … triplets → verl batch → **old log-probs → (ref log-probs, values) → rewards/KL → advantages →
critic/actor update** → new weights → vLLM.

`PPOStep` is a mixin of `agentlightning.verl.ray_policy.RayPPOPolicy`, a `RayPPOTrainer` subclass: verl's step
methods (`_compute_old_log_prob`, `_compute_ref_log_prob`, `_compute_values`, `_update_actor`, `_update_critic`) and
the attributes they read (`config`, `actor_rollout_wg`, `ref_policy_wg`, `critic_wg`, `use_reference_policy`,
`use_critic`, `ref_in_actor`, ...) are the trainer's own, calling verl's Ray worker groups (on GPUs and on CPU).

`step(batch)` is the middle of verl's `RayPPOTrainer.fit` step, after generation: group filtering (verl's
`algorithm.filter_groups`: GRPO groups whose rewards are all equal carry no signal), old log-probs (or, in verl's
bypass mode, the sampler's logprobs recorded by the proxy), ref log-probs, values, KL-in-reward, `compute_advantage` (with
our rollout-level credit assignment when configured), critic and actor updates, `compute_data_metrics`. What differs
from verl's step, and why: agent rollouts give a variable number of samples per step, so the batch is trimmed to
a multiple of (mini-batches × data-parallel ranks) and the mini-batch size is set per step from the sample count.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf, open_dict

from agentlightning.verl.batch import apply_rollout_level_advantages

__all__ = ["PPOStep"]

logger = logging.getLogger(__name__)


class PPOStep:
    """`step(batch)`: one PPO/GRPO update (see the module docstring). Needs `config`, `credit_assignment`,
    `normalize_turns`, `global_steps`, the verl step methods and worker handles of the class it is mixed into."""

    config: Any
    credit_assignment: str
    normalize_turns: bool
    global_steps: int
    use_reference_policy: bool
    use_critic: bool
    actor_rollout_wg: Any
    critic_wg: Any

    @property
    def dp_size(self) -> int:
        """Data-parallel ranks the actor's batch is split over."""
        return int(getattr(self.actor_rollout_wg, "world_size", 1) or 1)

    def _prepare(self, batch: Any) -> Any:
        batch.meta_info["temperature"] = self.config.actor_rollout_ref.rollout.temperature
        batch.meta_info["global_token_num"] = torch.sum(batch.batch["attention_mask"], dim=-1).tolist()
        batch.meta_info["images_seqlens"] = []
        return batch

    def log_probs(self, batch: Any) -> torch.Tensor:
        """The current policy's log-probs of `batch`'s responses (B,R), padding 0 — verl's `compute_log_prob`."""
        old, _ = self._compute_old_log_prob(self._prepare(batch))  # type: ignore[attr-defined]
        return old.batch["old_log_probs"] * batch.batch["response_mask"]

    def bypass_old_log_prob(self, batch: Any) -> bool:
        """verl's bypass mode (`algorithm.rollout_correction.bypass_mode`): π_old = the sampler's logprobs (vLLM's,
        recorded by the proxy), which skips the old-log-prob forward pass — textbook PPO, whose π_old is the behaviour
        policy. Without `rollout_log_probs` in the batch (some call recorded no logprobs) it falls back to
        recomputing, with a warning, rather than failing the step."""
        wanted = bool(OmegaConf.select(self.config, "algorithm.rollout_correction.bypass_mode", default=False))
        if wanted and "rollout_log_probs" not in batch.batch.keys():
            logger.warning("algorithm.rollout_correction.bypass_mode=true but this batch has no rollout_log_probs (a "
                           "model call was recorded without logprobs; the trainer's proxy requests them); "
                           "recomputing old log-probs for this step instead")
            return False
        return wanted

    def step(self, batch: Any) -> dict[str, float]:
        """One update on `batch` (from `build_batch`); returns verl's metrics plus timings (`timing_s/*`)."""
        cfg, metrics, timing = self.config, {}, {}
        self.global_steps += 1
        self.last_batch = None  # the batch the update saw (advantages included); None when nothing was updated
        batch = self._filter_groups(batch, metrics)
        if len(batch) < self.num_mini_batches * self.dp_size:
            logger.info("step %d: no update — %d samples left after filtering groups with identical rewards",
                        self.global_steps, len(batch))
            metrics["batch/update_skipped"] = 1.0
            return metrics
        metrics["batch/update_skipped"] = 0.0
        from verl.trainer.ppo.metric_utils import compute_data_metrics
        from verl.utils.metric import reduce_metrics

        batch = self._prepare(batch)
        batch = self._old_log_probs(batch, metrics, timing)
        if self.use_reference_policy:
            with _timer(timing, "ref"):
                batch = batch.union(self._compute_ref_log_prob(batch))  # type: ignore[attr-defined]
        if self.use_critic:
            with _timer(timing, "values"):
                batch = batch.union(self._compute_values(batch))  # type: ignore[attr-defined]
        with _timer(timing, "adv"):
            batch = self._advantages(batch, metrics)
        batch, dropped = self._fit_mini_batches(batch)
        metrics["batch/dropped_for_mini_batches"] = dropped
        with self._mini_batch_config(len(batch)):
            if self.use_critic:
                with _timer(timing, "update_critic"):
                    metrics.update(reduce_metrics(self._update_critic(batch).meta_info["metrics"]))  # type: ignore[attr-defined]
            if cfg.trainer.critic_warmup <= self.global_steps:
                with _timer(timing, "update_actor"):
                    metrics.update(reduce_metrics(self._update_actor(batch).meta_info["metrics"]))  # type: ignore[attr-defined]
        if "actor/entropy" not in metrics and "actor/entropy_loss" in metrics:  # bypass mode: from the update pass
            metrics["actor/entropy"] = metrics["actor/entropy_loss"]
        metrics.update(compute_data_metrics(batch=batch, use_critic=self.use_critic))
        metrics.update({f"timing_s/{k}": v for k, v in timing.items()})
        self.last_batch = batch
        # verl's MFU divides by a CUDA device's peak FLOPs; on CPU it reports 0.0, which is not a measurement
        on_cpu = str(cfg.trainer.device) == "cpu"
        return {k: float(v) for k, v in metrics.items() if _is_number(v) and not (on_cpu and k.startswith("perf/mfu"))}

    def _filter_groups(self, batch: Any, metrics: dict[str, Any]) -> Any:
        """verl's `algorithm.filter_groups` (DAPO's dynamic sampling, without re-sampling): drop the GRPO groups
        (same `uid`) whose samples all got the same reward. With an outcome estimator their advantages are exactly 0,
        so they add no gradient, only compute — and, with token-mean loss aggregation, they dilute the others."""
        if not OmegaConf.select(self.config, "algorithm.filter_groups.enable", default=False):
            return batch
        rewards = batch.batch["token_level_scores"].sum(dim=-1).tolist()
        uids = batch.non_tensor_batch["uid"].tolist()
        values: dict[Any, set[float]] = {}
        for uid, reward in zip(uids, rewards, strict=True):
            values.setdefault(uid, set()).add(round(float(reward), 6))
        informative = {uid for uid, seen in values.items() if len(seen) > 1}
        keep = [i for i, uid in enumerate(uids) if uid in informative]
        metrics["batch/groups"] = float(len(values))
        metrics["batch/groups_filtered"] = float(len(values) - len(informative))
        metrics["batch/samples_filtered"] = float(len(uids) - len(keep))
        return batch if len(keep) == len(uids) else batch.select_idxs(np.array(keep, dtype=np.int64))

    def _old_log_probs(self, batch: Any, metrics: dict[str, Any], timing: dict[str, float]) -> Any:
        from verl.trainer.ppo.core_algos import agg_loss

        cfg = self.config
        if self.bypass_old_log_prob(batch):
            from verl.trainer.ppo.rollout_corr_helper import apply_bypass_mode

            apply_bypass_mode(batch=batch, rollout_corr_config=cfg.algorithm.rollout_correction,
                              policy_loss_config=cfg.actor_rollout_ref.actor.policy_loss)
            metrics["batch/old_log_prob_from_rollout"] = 1.0
            return batch
        with _timer(timing, "old_log_prob"):
            old, _mfu = self._compute_old_log_prob(batch)  # type: ignore[attr-defined]
            entropys = old.batch.pop("entropys")
            actor_cfg = cfg.actor_rollout_ref.actor
            metrics["actor/entropy"] = agg_loss(loss_mat=entropys, loss_mask=batch.batch["response_mask"],
                                                loss_agg_mode=actor_cfg.loss_agg_mode,
                                                loss_scale_factor=actor_cfg.loss_scale_factor).item()
            batch = batch.union(old)
        if "rollout_log_probs" in batch.batch.keys():  # how far vLLM's logprobs are from the trainer's
            from verl.utils.debug.metrics import calculate_debug_metrics

            metrics.update(calculate_debug_metrics(batch))
        metrics["batch/old_log_prob_from_rollout"] = 0.0
        return batch

    def _advantages(self, batch: Any, metrics: dict[str, Any]) -> Any:
        from verl.trainer.ppo.ray_trainer import apply_kl_penalty, compute_advantage

        cfg = self.config
        if cfg.algorithm.use_kl_in_reward:
            batch, kl_metrics = apply_kl_penalty(batch, kl_ctrl=self.kl_ctrl_in_reward,  # type: ignore[attr-defined]
                                                 kl_penalty=cfg.algorithm.kl_penalty)
            metrics.update(kl_metrics)
        else:
            batch.batch["token_level_rewards"] = batch.batch["token_level_scores"]
        compute = partial(compute_advantage, adv_estimator=cfg.algorithm.adv_estimator, gamma=cfg.algorithm.gamma,
                          lam=cfg.algorithm.lam, num_repeat=cfg.actor_rollout_ref.rollout.n,
                          norm_adv_by_std_in_grpo=cfg.algorithm.get("norm_adv_by_std_in_grpo", True),
                          config=cfg.algorithm)
        if self.credit_assignment == "rollout_level":
            return apply_rollout_level_advantages(batch, compute, normalize_turns=self.normalize_turns)
        return compute(batch)

    @property
    def num_mini_batches(self) -> int:
        """Updates per step: `data.train_batch_size // actor.ppo_mini_batch_size` (verl's meaning), at least 1."""
        cfg = self.config
        return max(1, int(cfg.data.train_batch_size) // int(cfg.actor_rollout_ref.actor.ppo_mini_batch_size))

    def _fit_mini_batches(self, batch: Any) -> tuple[Any, int]:
        """Agent rollouts give a variable number of samples (turns) per step, but verl's mini-batch iterator and its
        split over data-parallel ranks need the batch size to divide evenly. Drop the `B mod (k * dp)` samples
        (k = mini-batches per step, dp = ranks) at random, counted."""
        k = self.num_mini_batches * self.dp_size
        size = len(batch)
        if size < k:
            raise ValueError(f"the batch has {size} samples but the config asks for {self.num_mini_batches} "
                             f"mini-batches per step over {self.dp_size} data-parallel ranks (data.train_batch_size "
                             "// actor.ppo_mini_batch_size, times the GPUs). Fix: lower the number of mini-batches or "
                             "collect more rollouts per step")
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

    # ------------------------------------------------------------------ checkpoints (verl's worker methods)
    def save_checkpoint(self, folder: str | Path, step: int, max_to_keep: int | None = None) -> None:
        """verl's FSDP checkpoint (model, optimizer, lr scheduler, RNG) of the actor (and critic) into `folder`."""
        folder = Path(folder)
        self.actor_rollout_wg.save_checkpoint(str(folder / "actor"), None, step, max_ckpt_to_keep=max_to_keep)
        if self.use_critic:
            self.critic_wg.save_checkpoint(str(folder / "critic"), None, step, max_ckpt_to_keep=max_to_keep)

    def load_checkpoint(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.actor_rollout_wg.load_checkpoint(str(folder / "actor"))
        if self.use_critic:
            self.critic_wg.load_checkpoint(str(folder / "critic"))


@contextlib.contextmanager
def _timer(timing: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timing[name] = timing.get(name, 0.0) + time.perf_counter() - started


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool)
