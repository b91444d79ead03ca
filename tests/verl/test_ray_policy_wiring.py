"""The GPU path's wiring, checked on CPU: `RayPPOPolicy` (a real `RayPPOTrainer` subclass) with FAKE Ray pieces
(`FakeServerManager`, `FakeCheckpointManager` stand in for verl's vLLM replicas and checkpoint engine), and
`VerlAlgorithm`'s loop driving a FAKE policy against a FAKE OpenAI upstream: which calls happen, in which order,
against which endpoints. The update itself runs for real: `RayPPOPolicy.step` on verl's in-process actor worker
(the CPU stand-in for its Ray worker group). The real GPU run is tests/verl/test_gpu_fit.py (marker `gpu`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from agentlightning.agent import rollout
from agentlightning.trainer import Trainer
from agentlightning.types import LLM

sys.path.insert(0, str(Path(__file__).parents[1] / "serving"))
from fakes import FakeUpstream  # noqa: E402


class FakeServerManager:
    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    def get_addresses(self) -> list[str]:
        return self.addresses


class FakeCheckpointManager:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def sleep_replicas(self) -> None:
        self.calls.append("sleep_replicas")

    def update_weights(self, step: int) -> None:
        self.calls.append(f"update_weights({step})")


def _bare_ray_policy(config: Any) -> Any:
    """A RayPPOPolicy without init_workers (no GPUs here): the attributes RayPPOTrainer's step methods read."""
    from agentlightning.verl import cpu_platform

    cpu_platform.activate()
    from agentlightning.verl.ray_policy import RayPPOPolicy

    policy = RayPPOPolicy.__new__(RayPPOPolicy)
    policy.config, policy.credit_assignment, policy.normalize_turns = config, "identical", True
    policy.global_steps, policy.use_reference_policy, policy.use_critic = 0, False, False
    policy.use_teacher_policy, policy.ref_in_actor, policy.distillation_config = False, False, None
    return policy


def test_ray_policy_is_verls_trainer_and_its_seams_call_verl(cpu_config: Any) -> None:
    policy = _bare_ray_policy(cpu_config)
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    assert isinstance(policy, RayPPOTrainer)
    calls: list[str] = []
    policy.llm_server_manager = FakeServerManager(["10.0.0.5:8001", "10.0.0.6:8001"])
    policy.checkpoint_manager = FakeCheckpointManager(calls)
    assert policy.base_urls() == ["http://10.0.0.5:8001/v1", "http://10.0.0.6:8001/v1"]
    policy.start(3)
    policy.release_rollout()
    policy.push_weights(4)
    assert calls == ["update_weights(3)", "sleep_replicas", "update_weights(4)"] and policy.global_steps == 3
    policy.llm_server_manager = FakeServerManager([])
    with pytest.raises(RuntimeError, match="no vLLM rollout replicas"):
        policy.base_urls()


def test_gpu_preset_names_the_served_model() -> None:
    from agentlightning.verl.config import compose_config

    cfg = compose_config("calc_x", ["preset=gpu"])
    vllm = cfg.actor_rollout_ref.rollout.engine_kwargs.vllm
    assert vllm.served_model_name == "policy" and vllm.enable_auto_tool_choice and vllm.tool_call_parser == "hermes"
    assert cfg.trainer.device == "cuda" and cfg.agentlightning.runner_backend == "ray"


def test_ray_policy_step_runs_verls_own_trainer_methods(cpu_config: Any, answer_pair_batch: Any) -> None:
    """RayPPOTrainer's `_compute_old_log_prob` / `_update_actor` (inherited, not borrowed) under PPOStep, on verl's
    actor worker in this process standing in for the Ray worker group: the parameters change."""
    from verl.workers.engine_workers import ActorRolloutRefWorker

    from agentlightning.verl.actor import single_process_dist_env

    policy = _bare_ray_policy(cpu_config)
    single_process_dist_env()
    worker = ActorRolloutRefWorker(cpu_config.actor_rollout_ref, role="actor")
    worker.init_model()
    policy.actor_rollout_wg = worker
    batch = answer_pair_batch()
    module = worker.actor.engine.module
    before = {k: v.full_tensor().detach().clone() for k, v in module.named_parameters()}
    metrics = policy.step(batch)
    assert metrics["actor/grad_norm"] > 0 and metrics["batch/old_log_prob_from_rollout"] == 0.0
    changed = sum(not torch.equal(v.full_tensor(), before[k]) for k, v in module.named_parameters())
    assert changed > 0.9 * len(before)


class FakePolicy:
    """Records what the loop asks of it; its endpoint is a FAKE OpenAI upstream; `step` checks the batch."""

    def __init__(self, base_url: str, calls: list[str]) -> None:
        self.url, self.calls, self.global_steps, self.batches = base_url, calls, 0, []

    served_model = "smol"

    def base_urls(self) -> list[str]:
        return [self.url]

    def start(self, step: int) -> dict[str, float]:
        self.calls.append(f"start({step})")
        return {}

    def release_rollout(self) -> None:
        self.calls.append("release")

    def step(self, batch: Any) -> dict[str, float]:
        self.batches.append(batch)
        self.global_steps += 1
        self.calls.append(f"step({len(batch)})")
        return {"actor/pg_loss": 0.0}

    def push_weights(self, step: int) -> dict[str, float]:
        self.calls.append(f"push({step})")
        return {"total": 0.0}

    def save_checkpoint(self, folder: Any, step: int, max_to_keep: int | None = None) -> None:
        self.calls.append(f"save({step})")

    def load_checkpoint(self, folder: Any) -> None:
        self.calls.append(f"load({Path(folder).name})")

    def close(self) -> None:
        self.calls.append("close")


@rollout
async def one_call_agent(task: dict[str, Any], llm: LLM) -> float:
    import openai

    client = openai.AsyncOpenAI(base_url=llm.get_base_url(), api_key="none")
    await client.chat.completions.create(model=llm.model, messages=[{"role": "user", "content": task["q"]}])
    return float(task["reward"])


async def test_loop_drives_the_policy_in_verls_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     model_path: str) -> None:
    import asyncio

    from agentlightning.verl import VerlAlgorithm
    from agentlightning.verl.config import compose_config

    upstream = FakeUpstream("replica-0")
    await upstream.start()
    calls: list[str] = []
    policy = FakePolicy(upstream.url, calls)
    cfg = compose_config("agentlightning", [
        f"agentlightning.output_dir={tmp_path}", "agentlightning.n_runners=0", "trainer.total_training_steps=2",
        "trainer.save_freq=2", "data.train_batch_size=2", "actor_rollout_ref.actor.ppo_mini_batch_size=2",
        "actor_rollout_ref.rollout.n=2", "data.shuffle=false",
        "algorithm.filter_groups.enable=false"])  # every group here is uniform by design: no re-sampling
    algorithm = VerlAlgorithm(cfg)
    monkeypatch.setattr(algorithm, "make_policy", lambda train: policy)
    tasks = [{"id": f"t{i}", "q": f"question {i}", "reward": i % 2} for i in range(4)]
    try:
        history = await asyncio.to_thread(Trainer(n_runners=0, algorithm=algorithm).fit, one_call_agent, tasks,
                                          tasks[:1])
    finally:
        await upstream.stop()
    assert calls == ["start(0)", "release", "step(4)", "push(1)", "release", "step(4)", "save(2)", "push(2)",
                     "close"]
    # every model call went to the policy's endpoint, through the proxy, with token IDs forced on
    assert len(upstream.requests) == 1 + 4 + 4 + 1 and all(r.get("return_token_ids") for r in upstream.requests)
    batch = policy.batches[0]
    assert sorted(batch.non_tensor_batch["uid"].tolist()) == ["t0", "t0", "t1", "t1"]
    assert batch.batch["token_level_scores"].sum().item() == 2.0  # the two rollouts of t1 were rewarded
    assert [h["step"] for h in history] == [1.0, 2.0]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2] and "val/reward/mean" in rows[-1]
