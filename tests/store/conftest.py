"""Fixtures giving every store backend behind the same contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentlightning.store import (
    InMemoryLightningStore,
    LightningStore,
    LightningStoreClient,
    LightningStoreServer,
    SqliteLightningStore,
)

BACKENDS = ["memory", "sqlite", "http-memory", "http-sqlite"]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LightningStore]:
    kind: str = request.param
    backend: LightningStore = (
        InMemoryLightningStore() if kind.endswith("memory") else SqliteLightningStore(tmp_path / "store.sqlite")
    )
    if not kind.startswith("http"):
        yield backend
        await backend.close()
        return
    server = LightningStoreServer(backend, sweep_seconds=0.1)
    await server.start()
    client = LightningStoreClient(server.url)
    yield client
    await client.close()
    await server.stop()
    await backend.close()
