"""Store behaviour beyond the shared contract: HTTP errors and auth, concurrent dequeuers across tasks and processes,
and SQLite durability after the store process is killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from agentlightning.store import (
    InMemoryLightningStore,
    LightningStore,
    LightningStoreClient,
    LightningStoreServer,
    SqliteLightningStore,
)
from agentlightning.types import RolloutConfig


async def test_server_binds_loopback_and_rejects_bad_requests() -> None:
    server = LightningStoreServer(InMemoryLightningStore())
    await server.start()
    try:
        assert server.host == "127.0.0.1"
        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.post("/rollouts/enqueue", json={"requests": "not-a-list"})
            assert response.status_code == 400 and "requests" in response.json()["detail"]
            response = await http.post("/rollouts/enqueue", json={"requests": [{"input": 1, "bogus": 2}]})
            assert response.status_code == 400 and "bogus" in response.json()["detail"]
            response = await http.post("/rollouts/dequeue", content=b"{not json")
            assert response.status_code == 400
            response = await http.get("/rollouts/ro-x")
            assert response.status_code == 404 and "ro-x" in response.json()["detail"]
    finally:
        await server.stop()


async def test_token_required_when_set() -> None:
    server = LightningStoreServer(InMemoryLightningStore(), token="s3cret")
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/health")).status_code == 200
            response = await http.post("/rollouts/query", json={})
            assert response.status_code == 401 and "Bearer" in response.json()["detail"]
        with pytest.raises(PermissionError, match="token"):
            await LightningStoreClient(server.url).query_rollouts()
        client = LightningStoreClient(server.url, token="s3cret")
        assert await client.query_rollouts() == []
        await client.close()
    finally:
        await server.stop()


async def test_client_names_the_dead_store() -> None:
    client = LightningStoreClient("http://127.0.0.1:9", retry_deadline=1.0)
    with pytest.raises(ConnectionError, match="127.0.0.1:9"):
        await client.query_rollouts()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_concurrent_dequeuers_claim_each_rollout_once(backend: str, tmp_path: Path) -> None:
    store: LightningStore = InMemoryLightningStore() if backend == "memory" else SqliteLightningStore(tmp_path / "s.db")
    rollouts = await store.enqueue_many_rollouts([{"input": i} for i in range(200)])
    claims: list[tuple[str, str]] = []

    async def worker(name: str) -> None:
        while (claimed := await store.dequeue_rollout(name)) is not None:
            claims.append((claimed.rollout_id, claimed.attempt.attempt_id))
            await store.update_attempt(claimed.rollout_id, claimed.attempt.attempt_id, status="succeeded")

    await asyncio.gather(*(worker(f"w{i}") for i in range(16)))
    assert sorted(r for r, _ in claims) == sorted(r.rollout_id for r in rollouts)
    assert len({a for _, a in claims}) == len(claims)
    assert len(await store.query_rollouts(status=["succeeded"])) == 200
    await store.close()


_WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from agentlightning.store import LightningStoreClient

    url, name, go = sys.argv[1:4]
    print("ready", flush=True)
    while not os.path.exists(go):  # start together, so the work is really contended
        time.sleep(0.01)

    async def run():
        client = LightningStoreClient(url)
        got = []
        while (claimed := await client.dequeue_rollout(name)) is not None:
            got.append(claimed.rollout_id)
            await client.update_attempt(claimed.rollout_id, claimed.attempt.attempt_id, status="succeeded")
        await client.close()
        return got

    print(json.dumps(asyncio.run(run())), flush=True)
    """
)


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_processes_through_http_process_every_rollout_exactly_once(backend: str, tmp_path: Path) -> None:
    store: LightningStore = InMemoryLightningStore() if backend == "memory" else SqliteLightningStore(tmp_path / "s.db")
    server = LightningStoreServer(store)
    server.start_in_thread()
    go = tmp_path / "go"
    try:
        client = LightningStoreClient(server.url)
        ids = [r.rollout_id for r in asyncio.run(client.enqueue_many_rollouts([{"input": i} for i in range(120)]))]
        procs = [subprocess.Popen([sys.executable, "-c", _WORKER_SCRIPT, server.url, f"p{i}", str(go)],
                                  stdout=subprocess.PIPE, text=True) for i in range(4)]
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        go.touch()
        results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
        claimed = [rid for got in results for rid in got]
        assert sorted(claimed) == sorted(ids), "a rollout was claimed twice or never"
        assert sum(1 for got in results if got) >= 2, "work should be shared by several processes"
        succeeded = asyncio.run(client.query_rollouts(status=["succeeded"]))
        assert len(succeeded) == 120
    finally:
        server.stop_thread()


_STORE_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from agentlightning.store import SqliteLightningStore
    from agentlightning.types import RolloutConfig

    async def main():
        store = SqliteLightningStore(sys.argv[1])
        cfg = RolloutConfig(unresponsive_seconds=0.5, max_attempts=2)
        done = await store.enqueue_rollout("done")
        claimed = await store.dequeue_rollout("w")
        await store.update_attempt(done.rollout_id, claimed.attempt.attempt_id, status="succeeded")
        stuck = await store.enqueue_rollout("stuck", config=cfg)
        claimed = await store.dequeue_rollout("w")
        await store.update_attempt(stuck.rollout_id, claimed.attempt.attempt_id, status="running")
        waiting = await store.enqueue_rollout("waiting")
        print(done.rollout_id, stuck.rollout_id, waiting.rollout_id, flush=True)
        n = 0
        while True:  # keep writing acknowledged spans until killed
            await store.enqueue_rollout({"n": n})
            print("ack", n, flush=True)
            n += 1

    asyncio.run(main())
    """
)


async def test_sqlite_survives_sigkill_and_requeues_stale_attempts(tmp_path: Path) -> None:
    path = tmp_path / "durable.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", _STORE_SCRIPT, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    done_id, stuck_id, waiting_id = proc.stdout.readline().split()
    acked = -1
    deadline = time.monotonic() + 60
    while acked < 50 and time.monotonic() < deadline:
        acked = int(proc.stdout.readline().split()[1])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert acked >= 50
    await asyncio.sleep(0.6)  # longer than the stuck attempt's unresponsive_seconds

    store = SqliteLightningStore(path)
    try:
        assert (await store.get_rollout_by_id(done_id)).status == "succeeded"
        assert (await store.get_rollout_by_id(waiting_id)).status == "queuing"
        # silent for longer than unresponsive_seconds, but the store was down meanwhile, when no runner could beat:
        # the attempt gets unresponsive_seconds from the reopening to report (a live runner keeps its claim) ...
        assert (await store.get_rollout_by_id(stuck_id)).status == "running"
        inputs = {r.input["n"] for r in await store.query_rollouts() if isinstance(r.input, dict)}
        assert set(range(acked + 1)) <= inputs, "an acknowledged write was lost"
        await asyncio.sleep(0.6)
        # ... and, still silent after that, it is unresponsive and its rollout requeued behind 'waiting'
        await store.wait_for_rollouts([stuck_id], timeout=0)  # (a sweep)
        stuck = await store.get_rollout_by_id(stuck_id)
        assert stuck.status == "requeuing", "a running attempt silent past unresponsive_seconds must be requeued"
        assert (await store.query_attempts(stuck_id))[0].status == "unresponsive"
        retried = await store.dequeue_rollout("w2")
        assert retried is not None and retried.rollout_id == waiting_id  # FIFO: 'waiting' was queued first
    finally:
        await store.close()


async def test_sqlite_two_handles_share_one_file(tmp_path: Path) -> None:
    a, b = SqliteLightningStore(tmp_path / "x.db"), SqliteLightningStore(tmp_path / "x.db")
    rollout = await a.enqueue_rollout("x", config=RolloutConfig(max_attempts=1))
    claimed = await b.dequeue_rollout()
    assert claimed is not None and claimed.rollout_id == rollout.rollout_id
    assert await a.dequeue_rollout() is None
    await a.close()
    await b.close()


async def test_long_poll_claim_for_a_client_that_gave_up_is_given_back() -> None:
    backend = InMemoryLightningStore()
    server = LightningStoreServer(backend)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=0.3) as impatient:
            with pytest.raises(httpx.TimeoutException):  # the client leaves while the server still waits
                await impatient.post("/rollouts/dequeue", json={"worker_id": "gone", "wait_seconds": 3.0})
        rollout = await backend.enqueue_rollout({"x": 1})
        await asyncio.sleep(0.5)  # the server's wait claims it, sees the disconnect, puts it back
        back = await backend.get_rollout_by_id(rollout.rollout_id)
        assert back.status == "requeuing", back
        assert back.metadata.get("requeued_by") == "dequeue client disconnected"
        claimed = await backend.dequeue_rollout("next")
        assert claimed is not None and claimed.rollout_id == rollout.rollout_id
    finally:
        await server.stop()
