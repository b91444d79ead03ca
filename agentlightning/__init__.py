"""agentlightning: train any AI agent with reinforcement learning.

The loop: task → store → runner → agent → proxy → vLLM → spans → adapter → verl batch → update → weights → vLLM.
This package's top level re-exports the names users write code against; each lives in its own module.
"""

from agentlightning.adapter import AdapterResult, TraceAdapter
from agentlightning.agent import LitAgent, rollout
from agentlightning.emitter import emit_exception, emit_message, emit_metrics, emit_object, emit_reward
from agentlightning.proxy import LLMProxy
from agentlightning.runner import RunnerConfig
from agentlightning.runner_pool import RunnerPool
from agentlightning.store import (
    InMemoryLightningStore,
    InvalidTransitionError,
    LightningStore,
    LightningStoreClient,
    LightningStoreServer,
    NotFoundError,
    SqliteLightningStore,
    StoreError,
)
from agentlightning.tracer import Tracer
from agentlightning.trainer import DevReport, Trainer
from agentlightning.types import (
    LLM,
    Attempt,
    AttemptedRollout,
    PromptTemplate,
    ProxyLLM,
    ResourcesUpdate,
    Rollout,
    RolloutConfig,
    Span,
    Triplet,
)

__version__ = "0.1.0"

__all__ = [
    "LLM",
    "AdapterResult",
    "DevReport",
    "LLMProxy",
    "LitAgent",
    "RunnerConfig",
    "RunnerPool",
    "TraceAdapter",
    "Tracer",
    "Trainer",
    "emit_exception",
    "emit_message",
    "emit_metrics",
    "emit_object",
    "emit_reward",
    "rollout",
    "Attempt",
    "AttemptedRollout",
    "InMemoryLightningStore",
    "InvalidTransitionError",
    "LightningStore",
    "LightningStoreClient",
    "LightningStoreServer",
    "NotFoundError",
    "PromptTemplate",
    "ProxyLLM",
    "ResourcesUpdate",
    "Rollout",
    "RolloutConfig",
    "Span",
    "SqliteLightningStore",
    "StoreError",
    "Triplet",
    "__version__",
]
