"""Store backends behind one contract (`base.LightningStore`): in-memory, SQLite, and HTTP server/client."""

from agentlightning.store.base import (
    InvalidTransitionError,
    LightningStore,
    NotFoundError,
    StoreError,
    StoreRequestError,
    StoreUnavailableError,
)
from agentlightning.store.client import LightningStoreClient
from agentlightning.store.memory import InMemoryLightningStore
from agentlightning.store.server import LightningStoreServer
from agentlightning.store.sqlite import SqliteLightningStore

__all__ = [
    "InMemoryLightningStore",
    "InvalidTransitionError",
    "LightningStore",
    "LightningStoreClient",
    "LightningStoreServer",
    "NotFoundError",
    "SqliteLightningStore",
    "StoreError",
    "StoreRequestError",
    "StoreUnavailableError",
]
