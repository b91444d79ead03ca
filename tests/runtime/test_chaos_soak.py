"""Chaos soak: 300 rollouts finish exactly once while runners, the store server and the LLM proxy are SIGKILLed.

Set-up (real processes and sockets): `agl store --backend sqlite` and `agl proxy` as processes, a fake upstream
model in this process, three runner processes (`RunnerPool`, 8 episodes at once each). Each rollout makes two model
calls through the proxy and returns reward `i % 2`. During the run: six runner SIGKILLs at random moments, the store
server SIGKILLed and restarted (same file, same port) twice, the proxy once. The same pool must finish by itself.

Then, for every rollout: terminal exactly once (succeeded, with the reward its task implies); its last attempt
succeeded and holds both model calls and exactly one reward, in order, no span twice; every earlier attempt ended
as failed, unresponsive or timeout (a retry is recorded as one). The counts are printed.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from agentlightning.runner import RunnerConfig
from agentlightning.runner_pool import RunnerPool
from agentlightning.serving import find_free_port
from agentlightning.store import LightningStoreClient
from agentlightning.types import ProxyLLM, RolloutConfig
from tests.runtime.test_network_faults import CALLS, two_calls

N_ROLLOUTS = 300
RUNNER_KILLS = 6
TERMINAL = ["succeeded", "failed", "cancelled"]


class _Service:
    """One `agl` server process that can be SIGKILLed and started again on the same port."""

    def __init__(self, args: list[str], port: int, log: Path) -> None:
        self.args, self.port, self.log, self.proc = args, port, log, None
        self.kills = 0

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "agentlightning.cli.main", *self.args,
                                          "--port", str(self.port)], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(trust_env=False) as http:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, self.log.read_text()[-2000:]
                try:
                    await http.get(f"http://127.0.0.1:{self.port}/health", timeout=1)
                    return
                except httpx.HTTPError:
                    await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.args[0]} did not start: {self.log.read_text()[-2000:]}")

    async def kill_and_restart(self, down_s: float) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.kills += 1
        await asyncio.sleep(down_s)
        await self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_chaos_soak(tmp_path: Path) -> None:
    from tests.serving.fakes import FakeUpstream

    rng = random.Random(20261206)
    upstream = FakeUpstream()
    upstream.delay_s = 0.05  # episodes stay in flight long enough to be hit
    await upstream.start()
    store_port, proxy_port = find_free_port(), find_free_port()
    store_url = f"http://127.0.0.1:{store_port}"
    store = _Service(["store", "--backend", "sqlite", "--path", str(tmp_path / "soak.sqlite")], store_port,
                     tmp_path / "store.log")
    proxy = _Service(["proxy", "--backend", upstream.url, "--store", store_url], proxy_port, tmp_path / "proxy.log")
    await store.start()
    await proxy.start()
    clean = LightningStoreClient(store_url)  # the test's own view (it waits out the store's restarts too)
    pool = None
    try:
        await clean.add_resources({"main_llm": ProxyLLM(endpoint=f"http://127.0.0.1:{proxy_port}/v1", model="m")})
        # as in training (VerlAlgorithm.rollout_config): a failed attempt (the proxy was away) is retried too
        config = RolloutConfig(unresponsive_seconds=8, max_attempts=6, retry_condition=["failed", "timeout",
                                                                                         "unresponsive"])
        ids = [r.rollout_id for r in await clean.enqueue_many_rollouts(
            [{"input": {"i": i}, "config": config} for i in range(N_ROLLOUTS)])]
        pool = RunnerPool(two_calls, store_url, n_runners=3, log_dir=tmp_path / "runners",
                          config=RunnerConfig(max_concurrency=8, poll_seconds=1.0, heartbeat_seconds=1.0)).start()
        # what happens when (by rollouts finished): store restarts, a proxy restart, runner kills in between
        events = sorted([(40, "store"), (150, "store"), (100, "proxy")]
                        + [(rng.randrange(10, 260), "runner") for _ in range(RUNNER_KILLS)])
        started, deadline = time.monotonic(), time.monotonic() + 240
        runner_kills, done, killed = 0, [], set()
        while time.monotonic() < deadline:
            pool.check()  # the crash-loop guard must never fire: every death here is a kill from outside
            done = await clean.query_rollouts(status=TERMINAL, rollout_ids=ids)
            while events and len(done) >= events[0][0]:
                _, what = events.pop(0)
                if what == "store":
                    await store.kill_and_restart(down_s=2.0)
                elif what == "proxy":
                    await proxy.kill_and_restart(down_s=1.0)
                else:  # a runner the pool has not yet seen die (never the same one twice)
                    victim = rng.choice(sorted(set(pool.pids().values()) - killed))
                    os.kill(victim, signal.SIGKILL)
                    killed.add(victim)
                    runner_kills += 1
            if len(done) == N_ROLLOUTS and not events:
                break
            await asyncio.sleep(0.3)
        elapsed = time.monotonic() - started
        assert len(done) == N_ROLLOUTS, f"{N_ROLLOUTS - len(done)} rollouts not terminal after {elapsed:.0f} s"
        assert (runner_kills, store.kills, proxy.kills) == (RUNNER_KILLS, 2, 1)
        while pool.restarts < RUNNER_KILLS and time.monotonic() < deadline + 30:  # the last kill may be fresh
            await asyncio.sleep(0.2)
        assert pool.restarts == RUNNER_KILLS  # the same pool replaced each killed runner and finished the run

        rollouts = await clean.query_rollouts(rollout_ids=ids)
        assert len(rollouts) == N_ROLLOUTS and len({r.rollout_id for r in rollouts}) == N_ROLLOUTS
        not_ok = [r for r in rollouts if r.status != "succeeded"]
        if not_ok:
            detail = [(r.rollout_id, [(a.status, (a.metadata or {}).get("error")) for a in
                                      await clean.query_attempts(r.rollout_id)]) for r in not_ok[:3]]
            pytest.fail(f"{len(not_ok)} rollouts did not succeed: {detail}")
        retried = attempts_total = 0
        earlier_end: dict[str, int] = {}
        for r in rollouts:
            attempts = await clean.query_attempts(r.rollout_id)
            attempts_total += len(attempts)
            assert [a.sequence_id for a in attempts] == list(range(1, len(attempts) + 1))
            assert attempts[-1].status == "succeeded", [a.status for a in attempts]
            for a in attempts[:-1]:  # a retry is recorded as one: each earlier attempt ended, and not as a success
                assert a.status in ("failed", "unresponsive", "timeout"), [a.status for a in attempts]
                earlier_end[a.status] = earlier_end.get(a.status, 0) + 1
            retried += len(attempts) > 1
            spans = await clean.query_spans(r.rollout_id, attempt_id=attempts[-1].attempt_id)
            calls = [s for s in spans if s.name == "llm.call" and s.status == "ok"]
            rewards = [s for s in spans if s.name == "agentlightning.reward"]
            assert len(calls) == CALLS, [(s.name, s.status) for s in spans]
            assert len(rewards) == 1, "a reward missing or duplicated"
            assert rewards[0].attributes["reward"] == float(r.input["i"] % 2)
            assert len({s.span_id for s in spans}) == len(spans), "a span stored twice"
            sequence = [s.sequence_id for s in spans]
            assert sequence == sorted(set(sequence)), f"spans out of order or duplicated: {sequence}"
        assert retried >= 1  # the kills did hit running episodes
        print(f"\nchaos soak: {N_ROLLOUTS} rollouts in {elapsed:.1f} s, all succeeded exactly once; runner SIGKILLs "
              f"{runner_kills} (pool restarts {pool.restarts}), store SIGKILL+restart {store.kills}, proxy "
              f"{proxy.kills}; attempts {attempts_total} ({retried} rollouts retried; earlier attempts ended "
              f"{earlier_end}); model calls upstream {len(upstream.requests)}")
    finally:
        if pool is not None:
            pool.stop()
        await clean.close()
        proxy.stop()
        store.stop()
        await upstream.stop()
