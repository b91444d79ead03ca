"""Fixtures of the serving tests: fake upstreams and a store. The real vLLM server (`vllm_server`, one per test
session, shared by every test folder) lives in `tests/conftest.py`."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm must not fetch its price list offline
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fakes import FakeUpstream  # noqa: E402

from agentlightning.store import InMemoryLightningStore  # noqa: E402


@pytest.fixture
async def store() -> AsyncIterator[InMemoryLightningStore]:
    s = InMemoryLightningStore()
    yield s
    await s.close()


@pytest.fixture
async def attempted(store: InMemoryLightningStore) -> object:
    """A rollout that was enqueued and dequeued (so it has an attempt)."""
    await store.enqueue_rollout(input={"task": "test"})
    return await store.dequeue_rollout(worker_id="w1")


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    upstream = await FakeUpstream("fake-a").start()
    yield upstream
    await upstream.stop()


@pytest.fixture
async def fake_b() -> AsyncIterator[FakeUpstream]:
    upstream = await FakeUpstream("fake-b").start()
    yield upstream
    await upstream.stop()
