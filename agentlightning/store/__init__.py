"""Store backends behind one contract (`base.LightningStore`): in-memory, SQLite, and HTTP server/client."""

from agentlightning.store.base import InvalidTransitionError, LightningStore, NotFoundError, StoreError
from agentlightning.store.http import LightningStoreClient, LightningStoreServer, StoreRequestError
from agentlightning.store.memory import InMemoryLightningStore
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
]
