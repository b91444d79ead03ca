"""Core data types shared by every part of the loop (pydantic v2 models, JSON round-trippable).

Where this sits: everywhere. A *task* becomes a `Rollout` in the store; a runner claims it as an `Attempt`; the agent
talks to the policy through an `LLM`/`ProxyLLM` resource; every call and reward is a `Span`; the adapter turns spans
into `Triplet`s that become the verl batch. Resources (LLM endpoints, prompt templates) are published in versioned
`ResourcesUpdate`s so each rollout records which policy version produced it.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ACTIVE_ATTEMPT_STATUSES",
    "Attempt",
    "AttemptStatus",
    "AttemptedRollout",
    "LLM",
    "MAX_SEQUENCE_ID",
    "NamedResources",
    "PromptTemplate",
    "ProxyLLM",
    "Resource",
    "ResourcesUpdate",
    "Rollout",
    "RolloutConfig",
    "RolloutMode",
    "RolloutStatus",
    "Span",
    "TERMINAL_ROLLOUT_STATUSES",
    "Triplet",
]

RolloutStatus = Literal["queuing", "preparing", "running", "requeuing", "succeeded", "failed", "cancelled"]
AttemptStatus = Literal["preparing", "running", "succeeded", "failed", "timeout", "unresponsive", "cancelled"]
RolloutMode = Literal["train", "val", "test"]

TERMINAL_ROLLOUT_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
ACTIVE_ATTEMPT_STATUSES: frozenset[str] = frozenset({"preparing", "running"})
_RETRYABLE: frozenset[str] = frozenset({"failed", "timeout", "unresponsive"})
MAX_SEQUENCE_ID: Final = 2**63 - 1
"""The largest span `sequence_id`: SQLite's 64-bit INTEGER (the store's per-attempt counter)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------------------------------------- resources
class Resource(_Model):
    """Base of everything an agent can be given by the trainer (tagged by `resource_type`)."""

    resource_type: str


class LLM(Resource):
    """An OpenAI-compatible endpoint: `endpoint` is the base URL a client uses (usually ending in `/v1`)."""

    resource_type: Literal["llm"] = "llm"
    endpoint: str
    model: str
    api_key: str | None = None
    sampling_parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"endpoint {value!r} must start with http:// or https:// (e.g. 'http://127.0.0.1:8000/v1')")
        return value

    def get_base_url(self) -> str:
        """The base URL to hand to an OpenAI client."""
        return self.endpoint


class ProxyLLM(LLM):
    """The trainer's LLM proxy. Agents never call it bare: each rollout gets an `LLM` whose base URL carries its IDs,
    `<proxy>/rollout/{rollout_id}/attempt/{attempt_id}/v1`, so the proxy attributes every call without headers."""

    resource_type: Literal["proxy_llm"] = "proxy_llm"  # type: ignore[assignment]

    def _root(self) -> str:
        root = self.endpoint.rstrip("/")
        return root[: -len("/v1")] if root.endswith("/v1") else root

    def get_base_url(self, rollout_id: str | None = None, attempt_id: str | None = None) -> str:  # type: ignore[override]
        if rollout_id is None or attempt_id is None:
            raise ValueError(
                "ProxyLLM.get_base_url needs rollout_id and attempt_id: the proxy attributes calls by URL. "
                "Fix: use `proxy_llm.with_attempted_rollout(rollout)` (runners do this for you)."
            )
        return f"{self._root()}/rollout/{rollout_id}/attempt/{attempt_id}/v1"

    def with_attempted_rollout(self, rollout: AttemptedRollout) -> LLM:
        """A plain `LLM` bound to this rollout's current attempt."""
        return LLM(
            endpoint=self.get_base_url(rollout.rollout_id, rollout.attempt.attempt_id),
            model=self.model,
            api_key=self.api_key,
            sampling_parameters=dict(self.sampling_parameters),
        )


class PromptTemplate(Resource):
    """A prompt with placeholders: `engine="f-string"` uses `str.format`, `engine="jinja"` uses jinja2 (strict)."""

    resource_type: Literal["prompt_template"] = "prompt_template"
    template: str
    engine: Literal["f-string", "jinja"] = "f-string"

    def format(self, **kwargs: Any) -> str:
        if self.engine == "f-string":
            try:
                return self.template.format(**kwargs)
            except KeyError as exc:
                raise ValueError(
                    f"prompt template needs variable {exc.args[0]!r} but format() got {sorted(kwargs)}. "
                    f"Fix: pass {exc.args[0]}=..."
                ) from None
        import jinja2

        env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
        try:
            return env.from_string(self.template).render(**kwargs)
        except jinja2.UndefinedError as exc:
            raise ValueError(f"jinja prompt template: {exc.message}; format() got {sorted(kwargs)}. Fix: pass it.") from None


AnyResource = Annotated[LLM | ProxyLLM | PromptTemplate, Field(discriminator="resource_type")]
NamedResources = dict[str, AnyResource]


class ResourcesUpdate(_Model):
    """One published, immutable version of the named resources (e.g. the policy after training step N)."""

    resources_id: str
    version: int
    resources: NamedResources
    create_time: float = Field(default_factory=time.time)


# ---------------------------------------------------------------------------------------------------------- rollouts
class RolloutConfig(_Model):
    """Retry policy of a rollout.

    timeout_seconds: an attempt running longer than this is marked `timeout` (a finite number > 0, or None).
    unresponsive_seconds: an attempt with no heartbeat for this long is marked `unresponsive` (finite > 0, or None).
    max_attempts: total attempts allowed (1 = no retry).
    retry_condition: attempt outcomes that requeue the rollout while attempts remain.
    """

    # (inf/NaN refused: NaN never times out in memory, and both would turn into null in the SQLite store's JSON)
    timeout_seconds: float | None = Field(default=None, allow_inf_nan=False)
    unresponsive_seconds: float | None = Field(default=None, allow_inf_nan=False)
    max_attempts: int = 1
    retry_condition: list[AttemptStatus] = Field(default_factory=lambda: ["timeout", "unresponsive"])

    @model_validator(mode="after")
    def _check(self) -> RolloutConfig:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts={self.max_attempts} must be >= 1 (1 means a single try, no retry)")
        for name in ("timeout_seconds", "unresponsive_seconds"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name}={value} must be > 0, or None to disable it")
        bad = [c for c in self.retry_condition if c not in _RETRYABLE]
        if bad:
            raise ValueError(f"retry_condition {bad} is not retryable; allowed: {sorted(_RETRYABLE)}")
        return self


class Rollout(_Model):
    """One task to run once (with retries). `input` is the task dict handed to the agent."""

    rollout_id: str
    input: Any
    mode: RolloutMode | None = None
    status: RolloutStatus = "queuing"
    resources_id: str | None = None
    config: RolloutConfig = Field(default_factory=RolloutConfig)
    metadata: dict[str, Any] = Field(default_factory=dict)
    enqueue_time: float = Field(default_factory=time.time)
    start_time: float | None = None
    end_time: float | None = None
    num_attempts: int = 0

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_ROLLOUT_STATUSES


class Attempt(_Model):
    """One try at a rollout by one worker. `sequence_id` counts attempts of the rollout from 1."""

    attempt_id: str
    rollout_id: str
    sequence_id: int
    status: AttemptStatus = "preparing"
    worker_id: str | None = None
    start_time: float = Field(default_factory=time.time)
    last_heartbeat_time: float | None = None
    end_time: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_ATTEMPT_STATUSES


class AttemptedRollout(Rollout):
    """A rollout together with the attempt a worker just claimed (what `dequeue_rollout` returns)."""

    attempt: Attempt


# ------------------------------------------------------------------------------------------------------ spans, data
class Span(_Model):
    """One recorded event of an attempt: an LLM call (token IDs in `attributes`), a tool call, a reward, ...

    `sequence_id` is assigned by the store per attempt (monotonic), so ordering never depends on clocks; one given
    explicitly must lie in 0..`MAX_SEQUENCE_ID`. `span_id` is unique within its attempt (the store refuses a different
    span under a stored `span_id` and answers a re-sent identical one with the stored span).
    """

    rollout_id: str
    attempt_id: str
    sequence_id: int | None = Field(default=None, ge=0, le=MAX_SEQUENCE_ID)
    span_id: str
    trace_id: str | None = None
    parent_id: str | None = None
    name: str
    start_time: float | None = Field(default=None, allow_inf_nan=False)
    end_time: float | None = Field(default=None, allow_inf_nan=False)
    attributes: dict[str, Any] = Field(default_factory=dict)
    status: Literal["ok", "error", "unset"] = "unset"


class Triplet(_Model):
    """One training sample: a prompt, the model's response, and the reward credited to it."""

    prompt_token_ids: list[int]
    response_token_ids: list[int]
    logprobs: list[float] | None = None
    reward: float | None = None
    response_mask: list[int] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Triplet:
        n = len(self.response_token_ids)
        if self.logprobs is not None and len(self.logprobs) != n:
            raise ValueError(f"logprobs has {len(self.logprobs)} entries but response_token_ids has {n}")
        if self.response_mask is not None and len(self.response_mask) != n:
            raise ValueError(f"response_mask has {len(self.response_mask)} entries but response_token_ids has {n}")
        return self
