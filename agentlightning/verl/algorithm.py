"""`VerlAlgorithm`: the training loop `Trainer.fit` drives — rollouts from our runners, updates with verl, weights back.

Where this sits: it closes the loop. task → store → runner → agent → proxy → vLLM → spans → adapter → triplets →
**verl batch → PPO/GRPO update → new weights → vLLM**.

One step, the same code on CPU and GPU (the policy is verl's `RayPPOTrainer`, `agentlightning.verl.ray_policy`;
only its config differs):
1. publish the current policy: `session.proxy.as_resource(model=policy.served_model, sampling)` →
   `store.add_resources` (the proxy fronts `policy.base_urls()`: verl's vLLM rollout replicas);
2. `session.run_rollouts(tasks × rollout.n, mode="train")` (each rollout's metadata carries the task's data id);
   with verl's `algorithm.filter_groups`, more task batches (up to `max_num_gen_batches` per step) until
   `data.train_batch_size` groups have episodes with different rewards (DAPO's dynamic sampling);
3. `session.collect(rollout)` → triplets; a rollout the infrastructure failed takes its GRPO group out of the
   update, one the agent failed is an episode with reward 0 (`_rollouts`); `build_batch` → `DataProto`;
   `policy.release_rollout()` (GPU: verl's replicas sleep, freeing memory for the update);
4. `policy.step`: verl's old log-probs (or, in verl's bypass mode, the sampler's logprobs that the proxy
   recorded), ref/KL, advantages, actor (and critic) update (`agentlightning.verl.ppo_step`);
5. `policy.push_weights`: verl's weight sync from the actor ranks into the replicas (on CPU through shared memory
   and the replicas' reload, `agentlightning/verl/patches.py`), within `agentlightning.weight_sync_timeout_s`.
Validation (greedy, on the validation tasks) runs before training when `trainer.val_before_train`, and every
`trainer.test_freq` steps and at the last step when `test_freq` > 0 (verl's rule). With `agentlightning.selection`,
a split held out of the training tasks is played every `freq` steps too, and the last validation and checkpoint are
of the step that scored best there (`selection.py`). Metrics per step go to
`metrics.jsonl` and to verl's tracking backends in `trainer.logger` (console, tensorboard, wandb, mlflow, ...;
`metrics.py`); `reward_curve.png` is drawn at the end. Rollout timeout, heartbeat deadline and attempts are the
trainer's `rollout_config`, which `trainer_from_config` (and a `Trainer` given no other) takes from the
`agentlightning:` block. Every `trainer.save_freq`
steps a checkpoint (verl's FSDP model + optimizer + scheduler, plus `agl_state.json` with step and data cursor)
is written; a new `fit` resumes from the latest complete one (`trainer.resume_mode: disable` starts fresh).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from agentlightning.runner import rollout_failure_cause
from agentlightning.trainer import task_id
from agentlightning.verl import records
from agentlightning.verl.batch import BatchConfig, RolloutSamples, build_batch
from agentlightning.verl.config import AgentLightningConfig, compose_config, validate_config
from agentlightning.verl.metrics import MetricsLogger, plot_reward_curve
from agentlightning.verl.ray_policy import RayPPOPolicy
from agentlightning.verl.selection import BEST_DIR, Best, carve, keep_or_restore

__all__ = ["SERVED_NAME", "VerlAlgorithm", "hf_model_folder", "latest_checkpoint", "serve_checkpoint",
           "trainer_from_config"]

logger = logging.getLogger(__name__)

STATE_FILE = "agl_state.json"
SERVED_NAME = "policy"  # the name the presets' replicas serve the policy under, and `serve_checkpoint` serves it


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest `global_step_N` folder under `folder` whose `agl_state.json` exists (i.e. a complete save)."""
    if not folder.is_dir():
        return None
    done = [p for p in folder.glob("global_step_*") if (p / STATE_FILE).is_file()]
    return max(done, key=lambda p: int(p.name.rsplit("_", 1)[1]), default=None)


def hf_model_folder(path: Path) -> Path:
    """The HF model folder (config.json + *.safetensors) that `path` names: itself, a `global_step_N` checkpoint
    (its `actor/huggingface`, written when `actor.checkpoint.save_contents` has `hf_model`, as configs/base.yaml sets),
    or a training output folder (its latest checkpoint). Raises FileNotFoundError saying what is missing and the fix."""
    path = Path(path)
    if (path / "checkpoints").is_dir():
        latest = latest_checkpoint(path / "checkpoints")
        if latest is None:
            raise FileNotFoundError(f"{path}/checkpoints holds no complete global_step_N checkpoint. Fix: train with "
                                    "trainer.save_freq > 0, or pass an HF model folder")
        path = latest
    if (path / "actor").is_dir():
        path = path / "actor" / "huggingface"
    if (path / "config.json").is_file() and any(path.glob("*.safetensors")):
        return path
    if path.name == "huggingface" and (path.parent / "fsdp_config.json").is_file():
        raise FileNotFoundError(f"{path} has the model config but no weights: this checkpoint was saved without "
                                "hf_model in actor.checkpoint.save_contents. Fix: python -m verl.model_merger merge "
                                f"--backend fsdp --local_dir {path.parent} --target_dir {path}")
    raise FileNotFoundError(f"{path} is not an HF model folder (config.json + *.safetensors), a global_step_N "
                            "checkpoint or a training output folder. Fix: pass one of those, e.g. outputs/calc_x/cpu")


def serve_checkpoint(checkpoint: str, extra_args: Sequence[str] = (), startup_timeout: float = 600) -> Any:
    """A `VLLMServer` (not started; use it as a context manager) serving `checkpoint` as `policy`: "default" (the
    embedded default model) or anything `hf_model_folder` accepts, whose FileNotFoundError it raises unchanged."""
    from agentlightning.models import default_model_path
    from agentlightning.serving import VLLMServer

    path = default_model_path() if checkpoint == "default" else hf_model_folder(Path(checkpoint))
    return VLLMServer(path, served_model_name=SERVED_NAME, startup_timeout=startup_timeout, extra_args=extra_args)


class VerlAlgorithm:
    """PPO/GRPO with verl on agent rollouts (see the module docstring). `config`: a composed config (default:
    `compose_config()` = configs/agentlightning.yaml with the cpu preset); `overrides`: Hydra overrides; `policy`: an
    already built `RayPPOPolicy` to train (its start-up is paid once for several fits; the caller closes it)."""

    def __init__(self, config: DictConfig | None = None, overrides: Sequence[str] = (),
                 policy: RayPPOPolicy | None = None) -> None:
        self.config = config if config is not None else compose_config(overrides=list(overrides))
        self.agl: AgentLightningConfig = validate_config(self.config)
        self.output_dir = Path(self.agl.output_dir)
        self.history: list[dict[str, float]] = []
        self.policy = policy  # a policy built by the caller (kept open after fit); None: fit builds and closes one
        self.run_tag = ""  # the run's tag in its rollouts' metadata, kept across resumes (`_left_by_killed_run`)

    @property
    def rollout_config(self) -> Any:
        """The `RolloutConfig` of the `agentlightning:` block: rollout timeout, heartbeat deadline, attempts. A failed
        attempt is retried too (while attempts remain): in training a failure is mostly the infrastructure's (a tool
        server or the model endpoint away, a process killed), and a deterministic agent bug costs one extra try."""
        from agentlightning.types import RolloutConfig

        return RolloutConfig(timeout_seconds=self.agl.rollout_timeout_s,
                             unresponsive_seconds=self.agl.heartbeat_timeout_s, max_attempts=self.agl.max_attempts,
                             retry_condition=["failed", "timeout", "unresponsive"])

    # ------------------------------------------------------------------ entry point
    def fit(self, trainer: Any, agent: Any, train_dataset: Any, val_dataset: Any | None) -> list[dict[str, float]]:
        from agentlightning.trainer import task_list

        if trainer.proxy is None:  # the sampler's logprobs: π_old in bypass mode, else vLLM-vs-trainer metrics
            trainer.proxy_kwargs.setdefault("request_logprobs", True)
        elif not trainer.proxy.request_logprobs:
            logger.warning("the trainer's LLMProxy does not request logprobs: old log-probs are recomputed every step "
                           "(slower). Fix: LLMProxy(..., request_logprobs=True)")
        train, val = task_list(train_dataset), task_list(val_dataset) if val_dataset is not None else []
        if not train:
            raise ValueError("train_dataset is empty. Fix: pass a list of task dicts")
        train, select = carve(train, self.agl.selection["holdout"], int(self.config.data.train_batch_size))
        if select:
            logger.info("checkpoint selection: %d training tasks held out, played every %d steps and at the last",
                        len(select), self.agl.selection["freq"])
        self.output_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.output_dir / "config.yaml")
        policy = self.policy or self.make_policy(train)
        try:
            state = self._maybe_resume(policy)
            self.run_tag = state["run"]
            policy.start(state["step"])
            return asyncio.run(self._run(trainer, agent, train, val, policy, state, select))
        finally:
            if policy is not self.policy:
                policy.close()

    def make_policy(self, train: list[Any]) -> RayPPOPolicy:
        """verl's `RayPPOTrainer` (`RayPPOPolicy`) on the config's device: FSDP ranks, rollout replicas, weight sync."""
        return RayPPOPolicy(self.config, train, self.agl.credit_assignment, self.agl.normalize_turns,
                            weight_sync_timeout_s=self.agl.weight_sync_timeout_s)

    def _maybe_resume(self, policy: RayPPOPolicy) -> dict[str, Any]:
        state: dict[str, Any] = {"step": 0, "cursor": 0, "run": uuid.uuid4().hex}  # "run": tags this run's rollouts
        if str(self.config.trainer.get("resume_mode", "auto")) == "disable":
            return state
        latest = latest_checkpoint(self.output_dir / "checkpoints")
        if latest is None:
            return state
        policy.load_checkpoint(latest)
        state.update(json.loads((latest / STATE_FILE).read_text()))  # a checkpoint before run tags: a new tag
        policy.global_steps = state["step"]
        logger.info("resumed from %s (step %d, data cursor %d)", latest, state["step"], state["cursor"])
        return state

    # ------------------------------------------------------------------ the loop
    def _total_steps(self, n_train: int) -> int:
        cfg = self.config
        if cfg.trainer.get("total_training_steps"):
            return int(cfg.trainer.total_training_steps)
        return int(cfg.trainer.total_epochs) * math.ceil(n_train / int(cfg.data.train_batch_size))

    def _tasks_at(self, train: list[Any], cursor: int, count: int) -> list[tuple[str, Any]]:
        """`count` tasks from the data cursor: epoch e visits a permutation seeded by (data.seed or 0) + e."""
        out, seed = [], int(self.config.data.get("seed") or 0)
        for k in range(cursor, cursor + count):
            epoch, pos = divmod(k, len(train))
            order = np.random.default_rng(seed + epoch).permutation(len(train)) if self.config.data.shuffle \
                else np.arange(len(train))
            index = int(order[pos])
            out.append((task_id(train[index], index), train[index]))
        return out

    async def _rollouts(self, session: Any, tasks: list[tuple[str, Any]], n: int, mode: str, version: int,
                        model: str, progress: Callable[[int], None] | None = None,
                        refill: Callable[[], list[tuple[str, Any]]] | None = None, groups_wanted: int = 0,
                        reuse: dict[tuple[int, str], list[Any]] | None = None
                        ) -> tuple[list[RolloutSamples], dict[str, float]]:
        """`n` rollouts per task → samples + stats (`accuracy`: the share of rollouts played that succeeded with a
        positive reward, failed ones counted as wrong; per value of the task field `agentlightning.metrics_by` too).
        With `refill` (verl's `filter_groups` dynamic sampling, DAPO):
        while fewer than `groups_wanted` tasks have episodes with different rewards, play `refill()`'s tasks too
        (until it returns none), then keep the first `groups_wanted` such groups and every uniform group (the step
        filters those out and counts them). `progress` restarts for each refill.

        A rollout that failed after all its attempts is classified by `rollout_failure_cause`. Failed because of the
        infrastructure (its runner died, the model endpoint or a tool server was unreachable, the store away: counted
        in `rollout/infra_failed`), it has no fair trace to learn from, and scoring it 0 would teach the policy about
        the infrastructure: in training its whole GRPO group is left out (`batch/groups_incomplete`), since a group's
        baseline is only fair over all of its `n` episodes, and dynamic sampling plays more tasks to fill the batch.
        Failed because of the agent (it raised on a reply it could not handle), it is an episode with reward 0 and
        its recorded calls are trained as such. Both count in `rollout/failed` and as wrong in `accuracy`.

        `reuse` (a resumed run's first step, `_left_by_killed_run`): finished rollouts by (task batch, data id) that
        stand in for as many of that task's `n` episodes (`rollout/reused`); only the rest are played."""
        sampling = {k: v for k, v in self.agl.sampling.items() if v is not None}
        if mode == "val":
            sampling["temperature"] = 0.0
        resources = await session.store.add_resources(
            {"main_llm": session.proxy.as_resource(model=model, sampling_parameters=sampling)})
        samples, failed, infra_failed, empty, adapter_stats = [], 0, 0, 0, {}
        played, rounds, incomplete, rewarded, reused = 0, 0, 0, 0, 0
        self.last_rollouts: list[dict[str, Any]] = []  # one record per rollout played (`records.py`)
        groups: dict[str, list[float]] = {}  # metrics_by value -> 1/0 per rollout played
        agent_metrics: dict[str, list[float]] = {}
        t_rollout = t_adapter = 0.0
        while tasks:
            rounds += 1
            done: dict[str, list[Any]] = {}  # data id -> finished rollouts reused for it (a resumed run's first step)
            for data_id, _ in tasks:
                done.setdefault(data_id, (reuse or {}).pop((rounds, data_id), [])[:n])
            expanded = [(data_id, task) for data_id, task in tasks for _ in range(n - len(done[data_id]))]
            t0 = time.perf_counter()
            rollouts = await session.run_rollouts(
                [t for _, t in expanded], mode, resources.resources_id,  # the trainer's rollout_config
                metadata=[{"data_id": d, "policy_version": version, "gen_batch": rounds, "run": self.run_tag}
                          for d, _ in expanded], progress=progress) if expanded else []
            reused += sum(len(old) for old in done.values())
            task_of = dict(tasks)
            expanded = [(d, task_of[d]) for d, old in done.items() for _ in old] + expanded
            rollouts = [r for old in done.values() for r in old] + rollouts
            t1 = time.perf_counter()
            played += len(rollouts)
            broken: set[str] = set()  # tasks with a rollout the infrastructure failed: their groups leave the update
            for (data_id, task), rollout in zip(expanded, rollouts, strict=True):
                group = self._group_of(task)
                cause = None if rollout.status == "succeeded" else await rollout_failure_cause(session.store, rollout)
                failed += cause is not None
                record = {"rollout_id": rollout.rollout_id, "data_id": data_id, "group": group,
                          "status": rollout.status, "cause": cause, "reward": None, "turns": 0, "tokens": 0,
                          "gen_batch": rounds, "reused": rollout in done.get(data_id, ()), "empty_reason": None,
                          "problems": []}
                self.last_rollouts.append(record)
                if cause == "infra":
                    infra_failed += 1
                    broken.add(data_id)
                    if group is not None:
                        groups.setdefault(group, []).append(0.0)
                    continue
                result = await session.collect(rollout, data_id=data_id)
                if cause == "agent":  # the agent's own failure: an episode with reward 0, trained as such
                    result.final_reward = 0.0
                record.update(reward=result.final_reward, turns=len(result.triplets), empty_reason=result.empty_reason,
                              problems=result.problems[:5], tokens=sum(
                                  sum(t.response_mask) if t.response_mask is not None else len(t.response_token_ids)
                                  for t in result.triplets))
                rewarded += (result.final_reward or 0.0) > 0
                if group is not None:
                    groups.setdefault(group, []).append(float((result.final_reward or 0.0) > 0))
                if not result.triplets:
                    empty += 1
                for key, value in result.metrics.items():
                    agent_metrics.setdefault(key, []).append(value)
                for key, value in result.stats.items():
                    adapter_stats[f"adapter/{key}"] = adapter_stats.get(f"adapter/{key}", 0.0) + float(value)
                samples.append(RolloutSamples(rollout.rollout_id, data_id, result.triplets, result.final_reward))
            t_rollout, t_adapter = t_rollout + t1 - t0, t_adapter + time.perf_counter() - t1
            if mode == "train":
                incomplete += len(broken)
                samples = [s for s in samples if s.group_id not in broken]
            if refill is None or len(_informative_groups(samples)) >= groups_wanted:
                break
            tasks = refill()
        generated = sum(sum(t.response_mask) if t.response_mask is not None else len(t.response_token_ids)
                        for s in samples for t in s.triplets)
        rewards = np.array([s.final_reward or 0.0 for s in samples], dtype=float)
        turns = np.array([len(s.triplets) for s in samples], dtype=float)
        stats = {"rollout/count": float(played), "rollout/failed": float(failed),
                 "rollout/infra_failed": float(infra_failed), "rollout/reused": float(reused),
                 "batch/groups_incomplete": float(incomplete),
                 "rollout/without_triplets": float(empty),
                 "reward/mean": float(rewards.mean()) if len(rewards) else 0.0,
                 "reward/std": float(rewards.std()) if len(rewards) else 0.0,
                 "accuracy": rewarded / played if played else 0.0,
                 "tokens/mean": float(generated / len(samples)) if samples else 0.0,
                 "turns/mean": float(turns.mean()) if len(turns) else 0.0,
                 "rollout/completion_tokens": float(generated),
                 "timing_s/rollout": t_rollout, "timing_s/adapter": t_adapter, **adapter_stats,
                 **{f"agent/{k}": float(np.mean(v)) for k, v in sorted(agent_metrics.items())},
                 **{f"accuracy/{g}": float(np.mean(v)) for g, v in sorted(groups.items())},
                 **{f"episodes/{g}": float(len(v)) for g, v in sorted(groups.items())}}
        if refill is not None:
            informative = _informative_groups(samples)
            keep = set(informative[:groups_wanted]) | {s.group_id for s in samples if s.group_id not in informative}
            stats["batch/gen_batches"] = float(rounds)
            stats["batch/groups_surplus_dropped"] = float(max(0, len(informative) - groups_wanted))
            samples = [s for s in samples if s.group_id in keep]
        return samples, stats

    def _group_of(self, task: Any) -> str | None:
        """The task's `agentlightning.metrics_by` field as a group name (None: no grouping, or no such field)."""
        key = self.agl.metrics_by
        if key is None or not isinstance(task, dict) or task.get(key) is None:
            return None
        return str(task[key])

    async def _validate(self, session: Any, val: list[Any], version: int, model: str,
                        split: str = "val") -> dict[str, float]:
        """Greedy episodes on `val` → `<split>/...` metrics (`val`: the test split the run reports; `select`: the
        selection split)."""
        if not val:
            return {}
        from tqdm import tqdm

        tasks = [(task_id(t, i), t) for i, t in enumerate(val)]
        label = "validation" if split == "val" else "selection"
        bar = tqdm(total=len(tasks), desc=f"{label} (policy v{version})", dynamic_ncols=True, leave=False)
        _samples, stats = await self._rollouts(session, tasks, 1, "val", version, model,
                                               progress=lambda done: bar.update(done - bar.n))
        bar.close()
        logger.info("%s of policy v%d: accuracy %.3f over %d tasks", label, version, stats["accuracy"], len(tasks))
        return {f"{split}/{k}": v for k, v in stats.items() if not k.startswith("timing")}

    async def _run(self, trainer: Any, agent: Any, train: list[Any], val: list[Any], policy: RayPPOPolicy,
                   state: dict[str, Any], select: list[Any]) -> list[dict[str, float]]:
        from tqdm import tqdm
        from transformers import AutoTokenizer

        cfg = self.config
        tokenizer = AutoTokenizer.from_pretrained(str(cfg.actor_rollout_ref.model.path))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        batch_cfg = BatchConfig(int(cfg.data.max_prompt_length), int(cfg.data.max_response_length), int(pad),
                                self.agl.overlong, self.agl.credit_assignment, self.agl.normalize_turns)  # type: ignore[arg-type]
        total, per_step, n = self._total_steps(len(train)), int(cfg.data.train_batch_size), int(
            cfg.actor_rollout_ref.rollout.n)
        save_freq = int(cfg.trainer.save_freq)
        max_gen_batches = 1  # task batches per step: more only with verl's filter_groups (dynamic sampling)
        if OmegaConf.select(cfg, "algorithm.filter_groups.enable", default=False):
            # verl: max_num_gen_batches <= 0 means no limit; we stop after one pass over the training data
            max_gen_batches = int(OmegaConf.select(cfg, "algorithm.filter_groups.max_num_gen_batches", default=0)
                                  or 0) or max(1, math.ceil(len(train) / per_step))
        test_freq = int(cfg.trainer.get("test_freq") or -1)
        select_freq = int(self.agl.selection["freq"])
        best = Best.load(self.output_dir / "checkpoints" / BEST_DIR, self.run_tag)
        loggers = cfg.trainer.get("logger") or []
        metrics_log = MetricsLogger(self.output_dir, resume=state["step"] > 0,
                                    backends=[loggers] if isinstance(loggers, str) else list(loggers),
                                    project=str(cfg.trainer.project_name), experiment=str(cfg.trainer.experiment_name),
                                    config=OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
        try:
            async with trainer.session(agent, policy.base_urls()) as session:
                if cfg.trainer.get("val_before_train", True) and state["step"] == 0:
                    metrics_log.log(0, await self._validate(session, val, 0, policy.served_model))
                reuse = await self._left_by_killed_run(session.store, state)
                bar = tqdm(total=total, initial=state["step"], desc="agl-verl", dynamic_ncols=True)
                while state["step"] < total:
                    step = state["step"] + 1
                    t_step = time.perf_counter()
                    draws = _TaskDraws(self._tasks_at, train, state["cursor"], per_step, max_gen_batches)
                    samples, metrics = await self._rollouts(session, draws.next(), n, "train", step - 1,
                                                            policy.served_model, groups_wanted=per_step,
                                                            refill=draws.next if max_gen_batches > 1 else None,
                                                            reuse=reuse)
                    reuse = None
                    if metrics["rollout/infra_failed"]:  # a replica that died fails the run now, not at the sync
                        await asyncio.to_thread(policy.check_replicas, step)
                    await asyncio.to_thread(policy.release_rollout)
                    t = time.perf_counter()
                    built = build_batch(samples, batch_cfg)
                    metrics["timing_s/adapter"] += time.perf_counter() - t
                    metrics.update(built.stats.as_metrics())
                    t = time.perf_counter()
                    metrics.update(await asyncio.to_thread(policy.step, built.data))
                    metrics["timing_s/update"] = time.perf_counter() - t
                    self._record(step, samples, getattr(policy, "last_batch", None))
                    state = {"step": step, "cursor": draws.cursor, "run": self.run_tag}
                    t = time.perf_counter()
                    if not metrics.get("batch/update_skipped"):  # unchanged weights need no push
                        sync_timings = await asyncio.to_thread(policy.push_weights, step)
                        metrics.update({f"weight_sync/{k}_s": v for k, v in sync_timings.items()})
                    metrics["timing_s/weight_sync"] = time.perf_counter() - t
                    if select and (step == total or step % select_freq == 0):
                        t = time.perf_counter()
                        scores = await self._validate(session, select, step, policy.served_model, "select")
                        metrics.update(await keep_or_restore(scores, policy, best, step, total))
                        metrics["timing_s/select"] = time.perf_counter() - t
                    if save_freq > 0 and (step % save_freq == 0 or step == total):  # after a restore: its weights
                        t = time.perf_counter()
                        await asyncio.to_thread(self._save, policy, state)
                        metrics["timing_s/checkpoint"] = time.perf_counter() - t
                    metrics["timing_s/step"] = time.perf_counter() - t_step
                    if test_freq > 0 and (step == total or step % test_freq == 0):
                        metrics.update(await self._validate(session, val, step, policy.served_model))
                    metrics_log.log(step, metrics)
                    self.history.append({"step": float(step), **metrics})
                    bar.update(1)
                    bar.set_postfix(reward=f"{metrics['reward/mean']:.3f}", pg_loss=f"{metrics.get('actor/pg_loss', 0):.3f}")
                bar.close()
        finally:
            metrics_log.close()
        plot_reward_curve(self.output_dir / "metrics.jsonl", self.output_dir / "reward_curve.png")
        return self.history

    async def _left_by_killed_run(self, store: Any, state: dict[str, Any]) -> dict[tuple[int, str], list[Any]]:
        """What a killed trainer left in a persistent store (SQLite): its rollouts that never finished are cancelled
        (no trainer waits for them any more, and runners would otherwise play them); and, for a run resumed from a
        checkpoint, the training rollouts of this run (its tag) that succeeded with policy version `state["step"]` —
        the checkpoint resumed from, so the same weights — by (task batch of the step, data id): the resumed step
        reuses them instead of replaying them. The trainer owns its store, so nothing else is running in it."""
        reusable: dict[tuple[int, str], list[Any]] = {}
        cancelled = 0
        for rollout in await store.query_rollouts():
            meta = rollout.metadata
            if not rollout.is_terminal:
                with contextlib.suppress(Exception):  # finished meanwhile: nothing to cancel
                    await store.cancel(rollout.rollout_id)
                    cancelled += 1
            elif (state["step"] > 0 and rollout.mode == "train" and meta.get("run") == self.run_tag
                  and rollout.status == "succeeded" and meta.get("policy_version") == state["step"]):
                reusable.setdefault((int(meta.get("gen_batch", 1)), str(meta.get("data_id"))), []).append(rollout)
        if reusable or cancelled:
            logger.info("the store held work of a killed run: %d finished rollouts of policy v%d reused, %d "
                        "unfinished ones cancelled", sum(map(len, reusable.values())), state["step"], cancelled)
        return reusable

    def _record(self, step: int, samples: list[RolloutSamples], batch: Any) -> None:
        """`<output_dir>/steps/step_N.json`: the step's rollouts and the rows the update saw (`records.py`)."""
        try:
            calls = {(s.rollout_id, int(t.metadata.get("turn_index", i))): list(t.metadata.get("sequence_ids") or [])
                     for s in samples for i, t in enumerate(s.triplets)}
            rows = records.batch_samples(batch, calls) if batch is not None else []
            records.write_step(self.output_dir, step, records.mark_update(self.last_rollouts, rows), rows)
        except Exception as exc:  # noqa: BLE001 - a record is for looking at the run; it never stops training
            logger.warning("step %d: could not write its record for agl view: %r", step, exc)

    def _save(self, policy: RayPPOPolicy, state: dict[str, Any]) -> None:
        folder = self.output_dir / "checkpoints" / f"global_step_{state['step']}"
        if folder.exists():
            shutil.rmtree(folder)
        keep = self.config.trainer.get("max_actor_ckpt_to_keep")
        policy.save_checkpoint(folder, state["step"], max_to_keep=keep)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / STATE_FILE).write_text(json.dumps(state))  # written last: marks the checkpoint complete


def _informative_groups(samples: Sequence[RolloutSamples]) -> list[str]:
    """Data ids (GRPO groups) whose episodes got more than one reward value, in order of first appearance."""
    seen: dict[str, set[float]] = {}
    for sample in samples:
        seen.setdefault(sample.group_id, set()).add(round(float(sample.final_reward or 0.0), 6))
    return [group for group, rewards in seen.items() if len(rewards) > 1]


class _TaskDraws:
    """The task batches of one step, read from the data cursor: the step's own batch, then at most `limit - 1`
    refills (dynamic sampling). `cursor` is where the next step starts."""

    def __init__(self, tasks_at: Callable[[list[Any], int, int], list[tuple[str, Any]]], train: list[Any],
                 cursor: int, per_step: int, limit: int) -> None:
        self.tasks_at, self.train, self.cursor, self.per_step, self.limit, self.drawn = (
            tasks_at, train, cursor, per_step, limit, 0)

    def next(self) -> list[tuple[str, Any]]:
        if self.drawn >= self.limit:
            return []
        self.drawn += 1
        self.cursor += self.per_step
        return self.tasks_at(self.train, self.cursor - self.per_step, self.per_step)


def trainer_from_config(cfg: DictConfig) -> Any:
    """The `Trainer` a composed config describes: its store, runners and adapter, with a `VerlAlgorithm` on `cfg`
    (whose `rollout_config`, from the `agentlightning:` block, the `Trainer` takes)."""
    from agentlightning.adapter import TraceAdapter
    from agentlightning.runner import RunnerConfig
    from agentlightning.store import InMemoryLightningStore, SqliteLightningStore
    from agentlightning.trainer import Trainer

    agl = validate_config(cfg)
    if agl.store != "memory":
        Path(agl.store).parent.mkdir(parents=True, exist_ok=True)
    store = InMemoryLightningStore() if agl.store == "memory" else SqliteLightningStore(agl.store)
    adapter = TraceAdapter(mode=agl.adapter.get("mode", "transition"), agent_match=agl.adapter.get("agent_match"))
    algorithm = VerlAlgorithm(cfg)
    return Trainer(n_runners=agl.n_runners, store=store, algorithm=algorithm, adapter=adapter,
                   runner_backend=agl.runner_backend,  # type: ignore[arg-type]
                   runner_config=RunnerConfig(max_concurrency=agl.runner_concurrency), store_host=agl.host,
                   store_token=agl.store_token, proxy_kwargs={"host": agl.host},
                   runner_log_dir=Path(agl.output_dir) / "runners")
