"""`VerlAlgorithm`: the training loop `Trainer.fit` drives — rollouts from our runners, updates with verl, weights back.

Where this sits: it closes the loop. task → store → runner → agent → proxy → vLLM → spans → adapter → triplets →
**verl batch → PPO/GRPO update → new weights → vLLM**.

One step (CPU path, `trainer.device=cpu`):
1. publish the current policy: `session.proxy.as_resource(model=<served name>, sampling)` → `store.add_resources`;
2. `session.run_rollouts(tasks × rollout.n, mode="train")` (each rollout's metadata carries the task's data id);
3. `session.collect(rollout)` → triplets; failed rollouts are left out (counted); `build_batch` → `DataProto`;
4. `InProcessPPO.step`: verl's old log-probs, ref/KL, advantages, actor (and critic) update;
5. `VLLMWeightSync.push`: the actor's HF weights into the running vLLM server (pause, reload, reset cache, resume).
Validation runs before training and at the end. Metrics per step go to the console (tqdm), `metrics.jsonl` and
TensorBoard under `agentlightning.output_dir`; `reward_curve.png` is drawn at the end. Every `trainer.save_freq`
steps a checkpoint (verl's FSDP model + optimizer + scheduler, plus `agl_state.json` with step and data cursor)
is written; a new `fit` resumes from the latest complete one (`trainer.resume_mode: disable` starts fresh).

The GPU path (`trainer.device=cuda`) is meant to run on verl's own trainer with vLLM rollout replicas; it is not
wired yet (see the issue-5 report) and raises with that explanation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from agentlightning.trainer import task_id
from agentlightning.verl.batch import BatchConfig, RolloutSamples, build_batch
from agentlightning.verl.config import AgentLightningConfig, compose_config, validate_config
from agentlightning.verl.metrics import MetricsLogger, plot_reward_curve

__all__ = ["VerlAlgorithm", "latest_checkpoint", "trainer_from_config"]

logger = logging.getLogger(__name__)

STATE_FILE = "agl_state.json"
SERVED_NAME = "policy"


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest `global_step_N` folder under `folder` whose `agl_state.json` exists (i.e. a complete save)."""
    if not folder.is_dir():
        return None
    done = [p for p in folder.glob("global_step_*") if (p / STATE_FILE).is_file()]
    return max(done, key=lambda p: int(p.name.rsplit("_", 1)[1]), default=None)


class VerlAlgorithm:
    """PPO/GRPO with verl on agent rollouts (see the module docstring). `config`: a composed config (default:
    `compose_config()` = configs/agentlightning.yaml with the cpu preset); `overrides`: Hydra overrides."""

    def __init__(self, config: DictConfig | None = None, overrides: Sequence[str] = ()) -> None:
        self.config = config if config is not None else compose_config(overrides=list(overrides))
        self.agl: AgentLightningConfig = validate_config(self.config)
        self.output_dir = Path(self.agl.output_dir)
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------ entry point
    def fit(self, trainer: Any, agent: Any, train_dataset: Any, val_dataset: Any | None) -> list[dict[str, float]]:
        if str(self.config.trainer.device) != "cpu":
            raise NotImplementedError(
                f"trainer.device={self.config.trainer.device!r}: the GPU path (verl's trainer with vLLM rollout "
                "replicas and an agent-loop manager fronting our runners) is not wired in this version. Fix: run "
                "with preset=cpu, or drive verl's main_ppo directly")
        from agentlightning.serving.vllm_server import VLLMServer
        from agentlightning.trainer import task_list
        from agentlightning.verl.actor import InProcessPPO
        from agentlightning.verl.weight_sync import DEV_MODE_ENV, VLLMWeightSync

        train, val = task_list(train_dataset), task_list(val_dataset) if val_dataset is not None else []
        if not train:
            raise ValueError("train_dataset is empty. Fix: pass a list of task dicts")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.output_dir / "config.yaml")
        actor = InProcessPPO(self.config, self.agl.credit_assignment, self.agl.normalize_turns)
        state = self._maybe_resume(actor)
        vcfg = self.agl.vllm
        server = VLLMServer(self.config.actor_rollout_ref.model.path, served_model_name=SERVED_NAME,
                            env=DEV_MODE_ENV, startup_timeout=float(vcfg.get("startup_timeout_s", 300)),
                            log_path=self.output_dir / "vllm.log",
                            extra_args=["--max-model-len", str(vcfg.get("max_model_len", 2048)),
                                        *map(str, vcfg.get("extra_args", []))])
        server.start()
        sync = VLLMWeightSync(server.url, model_path=self.config.actor_rollout_ref.model.path)
        try:
            if state["step"] > 0:  # the server loaded the base model: push the resumed weights
                sync.push(actor.hf_state_dict(), version=state["step"])
            return asyncio.run(self._run(trainer, agent, train, val, actor, sync, state))
        finally:
            server.stop()
            sync.close()

    def _maybe_resume(self, actor: Any) -> dict[str, int]:
        state = {"step": 0, "cursor": 0}
        if str(self.config.trainer.get("resume_mode", "auto")) == "disable":
            return state
        latest = latest_checkpoint(self.output_dir / "checkpoints")
        if latest is None:
            return state
        actor.load_checkpoint(latest)
        state.update(json.loads((latest / STATE_FILE).read_text()))
        actor.global_steps = state["step"]
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

    async def _rollouts(self, session: Any, tasks: list[tuple[str, Any]], n: int, mode: str, version: int
                        ) -> tuple[list[RolloutSamples], dict[str, float]]:
        from agentlightning.types import RolloutConfig

        sampling = {k: v for k, v in self.agl.sampling.items() if v is not None}
        if mode == "val":
            sampling["temperature"] = 0.0
        resources = await session.store.add_resources(
            {"main_llm": session.proxy.as_resource(model=SERVED_NAME, sampling_parameters=sampling)})
        expanded = [(data_id, task) for data_id, task in tasks for _ in range(n)]
        config = RolloutConfig(timeout_seconds=self.agl.rollout_timeout_s, unresponsive_seconds=60, max_attempts=2)
        t0 = time.perf_counter()
        rollouts = await session.run_rollouts([t for _, t in expanded], mode, resources.resources_id, config=config,
                                              metadata=[{"data_id": d, "policy_version": version} for d, _ in expanded])
        t1 = time.perf_counter()
        samples, failed, empty = [], 0, 0
        for (data_id, _task), rollout in zip(expanded, rollouts, strict=True):
            if rollout.status != "succeeded":
                failed += 1
                continue
            result = await session.collect(rollout, data_id=data_id)
            if not result.triplets:
                empty += 1
            samples.append(RolloutSamples(rollout.rollout_id, data_id, result.triplets, result.final_reward))
        t2 = time.perf_counter()
        rewards = np.array([s.final_reward or 0.0 for s in samples], dtype=float)
        turns = np.array([len(s.triplets) for s in samples], dtype=float)
        stats = {"rollout/count": float(len(rollouts)), "rollout/failed": float(failed),
                 "rollout/without_triplets": float(empty),
                 "reward/mean": float(rewards.mean()) if len(rewards) else 0.0,
                 "reward/std": float(rewards.std()) if len(rewards) else 0.0,
                 "accuracy": float((rewards > 0).mean()) if len(rewards) else 0.0,
                 "turns/mean": float(turns.mean()) if len(turns) else 0.0,
                 "timing_s/rollout": t1 - t0, "timing_s/adapter": t2 - t1}
        return samples, stats

    async def _validate(self, session: Any, val: list[Any], version: int) -> dict[str, float]:
        if not val:
            return {}
        tasks = [(task_id(t, i), t) for i, t in enumerate(val)]
        _samples, stats = await self._rollouts(session, tasks, 1, "val", version)
        return {f"val/{k}": v for k, v in stats.items() if not k.startswith("timing")}

    async def _run(self, trainer: Any, agent: Any, train: list[Any], val: list[Any], actor: Any, sync: Any,
                   state: dict[str, int]) -> list[dict[str, float]]:
        from tqdm import tqdm

        cfg = self.config
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(cfg.actor_rollout_ref.model.path))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        batch_cfg = BatchConfig(int(cfg.data.max_prompt_length), int(cfg.data.max_response_length), int(pad),
                                self.agl.overlong, self.agl.credit_assignment, self.agl.normalize_turns)  # type: ignore[arg-type]
        total, per_step, n = self._total_steps(len(train)), int(cfg.data.train_batch_size), int(
            cfg.actor_rollout_ref.rollout.n)
        save_freq = int(cfg.trainer.save_freq)
        metrics_log = MetricsLogger(self.output_dir, resume=state["step"] > 0)
        async with trainer.session(agent, [sync.server_url + "/v1"]) as session:
            if cfg.trainer.get("val_before_train", True) and state["step"] == 0:
                metrics_log.log(0, await self._validate(session, val, 0))
            bar = tqdm(total=total, initial=state["step"], desc="agl-verl", dynamic_ncols=True)
            while state["step"] < total:
                step = state["step"] + 1
                t_step = time.perf_counter()
                tasks = self._tasks_at(train, state["cursor"], per_step)
                samples, metrics = await self._rollouts(session, tasks, n, "train", step - 1)
                t = time.perf_counter()
                built = build_batch(samples, batch_cfg)
                metrics["timing_s/adapter"] += time.perf_counter() - t
                metrics.update(built.stats.as_metrics())
                t = time.perf_counter()
                metrics.update(await asyncio.to_thread(actor.step, built.data))
                metrics["timing_s/update"] = time.perf_counter() - t
                t = time.perf_counter()
                sync_timings = await asyncio.to_thread(sync.push, actor.hf_state_dict(), step)
                metrics["timing_s/weight_sync"] = time.perf_counter() - t
                metrics.update({f"weight_sync/{k}_s": v for k, v in sync_timings.items()})
                state = {"step": step, "cursor": state["cursor"] + per_step}
                if save_freq > 0 and (step % save_freq == 0 or step == total):
                    t = time.perf_counter()
                    await asyncio.to_thread(self._save, actor, state)
                    metrics["timing_s/checkpoint"] = time.perf_counter() - t
                metrics["timing_s/step"] = time.perf_counter() - t_step
                if step == total:
                    metrics.update(await self._validate(session, val, step))
                metrics_log.log(step, metrics)
                self.history.append({"step": float(step), **metrics})
                bar.update(1)
                bar.set_postfix(reward=f"{metrics['reward/mean']:.3f}", pg_loss=f"{metrics.get('actor/pg_loss', 0):.3f}")
            bar.close()
        metrics_log.close()
        plot_reward_curve(self.output_dir / "metrics.jsonl", self.output_dir / "reward_curve.png")
        return self.history

    def _save(self, actor: Any, state: dict[str, int]) -> None:
        folder = self.output_dir / "checkpoints" / f"global_step_{state['step']}"
        if folder.exists():
            shutil.rmtree(folder)
        keep = self.config.trainer.get("max_actor_ckpt_to_keep")
        actor.save_checkpoint(folder, state["step"], max_to_keep=keep)
        (folder / STATE_FILE).write_text(json.dumps(state))  # written last: marks the checkpoint complete


def trainer_from_config(cfg: DictConfig) -> Any:
    """The `Trainer` a composed config describes: its store, runners and adapter, with a `VerlAlgorithm` on `cfg`."""
    from agentlightning.adapter import TraceAdapter
    from agentlightning.store import InMemoryLightningStore, SqliteLightningStore
    from agentlightning.trainer import Trainer

    agl = validate_config(cfg)
    store = InMemoryLightningStore() if agl.store == "memory" else SqliteLightningStore(agl.store)
    adapter = TraceAdapter(mode=agl.adapter.get("mode", "transition"), agent_match=agl.adapter.get("agent_match"))
    return Trainer(n_runners=agl.n_runners, store=store, algorithm=VerlAlgorithm(cfg), adapter=adapter,
                   runner_backend=agl.runner_backend,  # type: ignore[arg-type]
                   runner_log_dir=Path(agl.output_dir) / "runners")
