"""Training configuration: verl's own Hydra config (composed from `configs/`) plus a validated `agentlightning` block.

Where this sits: before the loop. `configs/agentlightning.yaml` composes verl's `ppo_trainer` (search path
`pkg://verl/trainer/config`), a preset (`configs/preset/{cpu,gpu}.yaml`) and the `agentlightning:` block, which
`AgentLightningConfig.from_omegaconf` turns into a dataclass whose checks say what is wrong, why, and the fix.
Cross-checks against verl's part (e.g. rollout_level needs an outcome estimator) live in `validate_config`.

`${agl_default_model:}` in YAML resolves to the embedded default model folder (`agl model path`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from agentlightning.net import is_loopback

__all__ = [
    "AgentLightningConfig",
    "CONFIG_DIR",
    "OUTCOME_ESTIMATORS",
    "compose_config",
    "data_path",
    "register_resolvers",
    "validate_config",
]

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
# verl estimators that give one scalar per sample (safe to broadcast per rollout); GAE needs per-token values.
OUTCOME_ESTIMATORS = frozenset({"grpo", "rloo", "reinforce_plus_plus", "reinforce_plus_plus_baseline", "remax",
                                "opo", "grpo_passk", "gpg", "rloo_vectorized", "grpo_vectorized"})


def data_path(path: str | os.PathLike[str]) -> Path:
    """A data path as given when it exists (absolute, or relative to the working directory), else relative to the
    repository (configs name the bundled files that way)."""
    given = Path(path)
    return given if given.exists() or given.is_absolute() else CONFIG_DIR.parent / given


def register_resolvers() -> None:
    """`${agl_default_model:}` → the default model folder. Idempotent."""
    if not OmegaConf.has_resolver("agl_default_model"):
        from agentlightning.models import default_model_path

        OmegaConf.register_new_resolver("agl_default_model", lambda: str(default_model_path()))


def compose_config(config_name: str = "agentlightning", overrides: list[str] | None = None,
                   config_dir: str | os.PathLike[str] | None = None) -> DictConfig:
    """Compose `configs/<config_name>.yaml` with Hydra overrides (like the command line) and validate it."""
    from hydra import compose, initialize_config_dir

    register_resolvers()
    folder = Path(config_dir) if config_dir else CONFIG_DIR
    if not (folder / f"{config_name}.yaml").is_file():
        raise FileNotFoundError(f"config {config_name!r} not found in {folder}; available: "
                                f"{sorted(p.stem for p in folder.glob('*.yaml'))}")
    with initialize_config_dir(config_dir=str(folder.resolve()), version_base=None):
        cfg = compose(config_name=config_name, overrides=list(overrides or []))
    validate_config(cfg)
    return cfg


def _fail(name: str, value: Any, why: str, fix: str) -> ValueError:
    return ValueError(f"agentlightning.{name}={value!r}: {why}. Fix: {fix}")


@dataclass
class AgentLightningConfig:
    """The `agentlightning:` block (see configs/agentlightning.yaml for each field's meaning)."""

    preset: str
    agent: str | None = None
    agent_config: str | None = None
    tasks: str | None = None
    train_data: str | None = None
    val_data: str | None = None
    metrics_by: str | None = None
    store: str = "memory"
    n_runners: int = 2
    runner_concurrency: int = 1
    runner_backend: str = "process"
    host: str = "127.0.0.1"
    store_token: str | None = None
    rollout_timeout_s: float | None = 600
    heartbeat_timeout_s: float = 60.0
    max_attempts: int = 2
    adapter: dict[str, Any] = field(default_factory=lambda: {"mode": "transition", "agent_match": None})
    credit_assignment: str = "identical"
    normalize_turns: bool = True
    overlong: str = "truncate"
    sampling: dict[str, Any] = field(default_factory=dict)
    weight_sync_timeout_s: float = 600.0
    selection: dict[str, Any] = field(default_factory=lambda: {"holdout": 0, "freq": 2})
    output_dir: str = "outputs"

    def __post_init__(self) -> None:
        if self.preset not in ("cpu", "gpu"):
            raise _fail("preset", self.preset, "only the cpu and gpu presets exist", "preset=cpu or preset=gpu")
        for key in ("agent", "tasks"):
            value = getattr(self, key)
            if value is not None and (":" not in value or value.startswith(":") or value.endswith(":")):
                raise _fail(key, value, "an object is named as 'package.module:attribute'",
                            f"agentlightning.{key}=examples.calc_x.agent:"
                            f"{'make_agent' if key == 'agent' else 'calc_x_tasks'}")
        if self.tasks is not None and (self.train_data is not None or self.val_data is not None):
            raise _fail("tasks", self.tasks, f"a task factory makes the tasks, so train_data={self.train_data!r} / "
                        f"val_data={self.val_data!r} would be ignored", "set the data in the factory's own config block "
                        "(agentlightning.agent_config names it), or agentlightning.tasks=null to read task files")
        for key in ("train_data", "val_data"):
            value = getattr(self, key)
            if value is not None and not data_path(value).is_file():
                raise _fail(key, value, "no such file (relative paths are read from the working directory, then from "
                            "the repository)", f"agentlightning.{key}=<an existing .json/.jsonl/.parquet file of task "
                            "dicts>")
        if not (self.store == "memory" or self.store.endswith((".db", ".sqlite", ".sqlite3"))):
            raise _fail("store", self.store, "the store is 'memory' or a SQLite file path",
                        "agentlightning.store=memory or agentlightning.store=runs/train.db")
        if self.n_runners < 0:
            raise _fail("n_runners", self.n_runners, "cannot be negative (0 runs the agent in this process)",
                        "agentlightning.n_runners=2")
        if self.runner_concurrency < 1:
            raise _fail("runner_concurrency", self.runner_concurrency, "each runner runs at least one rollout at a time",
                        "agentlightning.runner_concurrency=4 (rollouts per runner at once; 1 for sync agents that "
                        "are not thread-safe)")
        if self.runner_backend not in ("process", "ray"):
            raise _fail("runner_backend", self.runner_backend, "runners are processes or Ray actors",
                        "agentlightning.runner_backend=process")
        if not is_loopback(self.host) and not self.store_token:
            raise _fail("host", self.host, "the store and the LLM proxy would accept anyone on the network, and the "
                        "store has no token", "set agentlightning.store_token=<secret> (runners send it), or keep "
                        "agentlightning.host=127.0.0.1 for a single machine")
        if self.rollout_timeout_s is not None and self.rollout_timeout_s <= 0:
            raise _fail("rollout_timeout_s", self.rollout_timeout_s, "a timeout must be positive",
                        "a number of seconds, or null for none")
        if self.heartbeat_timeout_s <= 0:
            raise _fail("heartbeat_timeout_s", self.heartbeat_timeout_s, "a deadline must be positive",
                        "seconds without a heartbeat before an attempt counts as unresponsive, e.g. 60")
        if self.max_attempts < 1:
            raise _fail("max_attempts", self.max_attempts, "a rollout is tried at least once",
                        "agentlightning.max_attempts=2 (one retry after a failed or unresponsive attempt)")
        mode = self.adapter.get("mode", "transition")
        if mode not in ("transition", "trajectory"):
            raise _fail("adapter.mode", mode, "the adapter has two modes",
                        "agentlightning.adapter.mode=transition (one sample per LLM call) or trajectory")
        if self.credit_assignment not in ("identical", "rollout_level"):
            raise _fail("credit_assignment", self.credit_assignment, "two modes exist (see agentlightning/verl/batch.py)",
                        "agentlightning.credit_assignment=identical or rollout_level")
        if self.overlong not in ("truncate", "drop"):
            raise _fail("overlong", self.overlong, "over-long samples are truncated or dropped",
                        "agentlightning.overlong=truncate or drop")
        if self.weight_sync_timeout_s <= 0:
            raise _fail("weight_sync_timeout_s", self.weight_sync_timeout_s, "a timeout must be positive",
                        "seconds one weight sync into the rollout replicas may take, e.g. 600")
        self._check_selection()
        unknown = set(self.sampling) - {"temperature", "top_p", "top_k", "max_tokens", "stop", "seed"}
        if unknown:
            raise _fail("sampling", dict(self.sampling), f"unknown sampling keys {sorted(unknown)}",
                        "use temperature, top_p, top_k, max_tokens, stop, seed")

    def _check_selection(self) -> None:
        unknown = sorted(set(self.selection) - {"holdout", "freq"})
        if unknown:
            raise _fail("selection", dict(self.selection), f"unknown keys {unknown}",
                        "agentlightning.selection.holdout=<training tasks held out to select on, 0: none> and "
                        "agentlightning.selection.freq=<steps between selection validations>")
        holdout, freq = self.selection.get("holdout", 0), self.selection.get("freq", 2)
        if not isinstance(holdout, int) or isinstance(holdout, bool) or holdout < 0:
            raise _fail("selection.holdout", holdout, "a count of training tasks (0: no checkpoint selection)",
                        "agentlightning.selection.holdout=40")
        if not isinstance(freq, int) or isinstance(freq, bool) or freq < 1:
            raise _fail("selection.freq", freq, "steps between validations on the selection split, at least 1",
                        "agentlightning.selection.freq=2")
        self.selection = {"holdout": holdout, "freq": freq}

    @classmethod
    def from_omegaconf(cls, node: DictConfig) -> AgentLightningConfig:
        data = OmegaConf.to_container(node, resolve=True)
        assert isinstance(data, dict)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"agentlightning block has unknown keys {unknown}; known: {sorted(known)}. Fix: remove "
                             "or rename them (typos are not ignored)")
        for f in fields(cls):
            if f.name in data:
                data[f.name] = _typed(f.name, data[f.name], str(f.type))
        return cls(**data)  # type: ignore[arg-type]


_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
                                       "dict[str, Any]": (dict,)}


def _typed(name: str, value: Any, annotation: str) -> Any:
    """`value` if it has the field's type (ints accepted for floats, as floats), else a what/why/fix ValueError."""
    kinds = [k.strip() for k in annotation.split("|")]
    if value is None and "None" in kinds:
        return None
    for kind in kinds:
        allowed = _TYPES.get(kind, ())
        if isinstance(value, allowed) and not (kind in ("int", "float") and isinstance(value, bool)):
            return float(value) if kind == "float" else value
    wanted = " or ".join("null" if k == "None" else k for k in kinds)
    raise _fail(name, value, f"must be {wanted}, not {type(value).__name__}",
                f"agentlightning.{name}=<{wanted}> (see configs/base.yaml for what it means)")


def validate_config(cfg: DictConfig) -> AgentLightningConfig:
    """Check the `agentlightning` block and its fit with verl's part; returns the dataclass."""
    if "agentlightning" not in cfg:
        raise ValueError("the config has no `agentlightning:` block. Fix: compose configs/agentlightning.yaml")
    agl = AgentLightningConfig.from_omegaconf(cfg.agentlightning)
    estimator = str(cfg.algorithm.adv_estimator)
    if agl.credit_assignment == "rollout_level" and estimator not in OUTCOME_ESTIMATORS:
        raise ValueError(f"agentlightning.credit_assignment=rollout_level with algorithm.adv_estimator={estimator!r}: "
                         "rollout-level credit broadcasts one scalar advantage per rollout, which needs an outcome "
                         "estimator (GAE computes per-token advantages from a critic). Fix: algorithm.adv_estimator="
                         "grpo, or credit_assignment=identical")
    filter_groups = OmegaConf.select(cfg, "algorithm.filter_groups.enable", default=False)
    if filter_groups and estimator not in OUTCOME_ESTIMATORS:
        raise ValueError(f"algorithm.filter_groups.enable=true with algorithm.adv_estimator={estimator!r}: dropping "
                         "groups whose rewards are all equal is only lossless for outcome estimators (their advantage "
                         "is 0 there); GAE still learns values from them. Fix: algorithm.filter_groups.enable=false, "
                         "or an outcome estimator such as grpo")
    keep = cfg.trainer.get("max_actor_ckpt_to_keep")
    if agl.selection["holdout"] and keep:
        raise ValueError(f"agentlightning.selection.holdout={agl.selection['holdout']} with trainer."
                         f"max_actor_ckpt_to_keep={keep}: verl's checkpoint manager rotates every folder it saved, so "
                         "it would delete the best checkpoint that selection keeps. Fix: trainer."
                         "max_actor_ckpt_to_keep=null, or agentlightning.selection.holdout=0")
    device = str(cfg.trainer.device)
    if agl.preset == "cpu" and device != "cpu":
        raise ValueError(f"preset=cpu with trainer.device={device!r}: the CPU preset trains on the CPU platform. "
                         "Fix: trainer.device=cpu, or preset=gpu")
    model = cfg.actor_rollout_ref.model
    if device == "cpu":
        attn = OmegaConf.select(model, "override_config.attn_implementation", default="flash_attention_2")
        if model.use_remove_padding or attn not in ("sdpa", "eager"):
            raise ValueError(f"trainer.device=cpu with use_remove_padding={model.use_remove_padding}, "
                             f"attn_implementation={attn!r}: both need flash-attn CUDA kernels. Fix: "
                             "actor_rollout_ref.model.use_remove_padding=false and "
                             "+actor_rollout_ref.model.override_config.attn_implementation=sdpa (the cpu preset)")
    if device == "cpu":
        rollout = cfg.actor_rollout_ref.rollout
        for key, wanted, why in (
                ("tensor_model_parallel_size", 1, "each CPU replica is one process on one logical GPU"),
                ("enable_sleep_mode", False, "vLLM has no sleep mode on CPU (\"Sleep mode is not supported on current "
                                             "platform\")"),
                ("free_cache_engine", False, "freeing the KV cache needs sleep mode, which vLLM lacks on CPU")):
            if rollout.get(key) != wanted:
                raise ValueError(f"trainer.device=cpu with actor_rollout_ref.rollout.{key}={rollout.get(key)!r}: "
                                 f"{why}. Fix: actor_rollout_ref.rollout.{key}={str(wanted).lower()} (the cpu preset)")
    mini, batch = int(cfg.actor_rollout_ref.actor.ppo_mini_batch_size), int(cfg.data.train_batch_size)
    if mini < 1 or batch < 1 or batch % mini:
        raise ValueError(f"data.train_batch_size={batch} and actor.ppo_mini_batch_size={mini}: the mini-batch size "
                         "must divide the batch size (mini-batches per step = the quotient). Fix: e.g. equal values "
                         "for one update per step")
    _check_verl_keys(cfg)
    if int(cfg.actor_rollout_ref.rollout.n) < 1:
        raise ValueError(f"actor_rollout_ref.rollout.n={cfg.actor_rollout_ref.rollout.n} must be >= 1 (samples per "
                         "task; GRPO needs >= 2 for a baseline)")
    return agl


# verl 0.9.1's defaults of keys this project does not read (it has its own place for each): a changed value would be
# silently ignored, so it is rejected, naming where the setting lives here.
_NOT_READ = {
    "data.train_files": ("~/data/rlhf/gsm8k/train.parquet", "tasks come from agentlightning.train_data (or the "
                         "agent's task factory, agentlightning.tasks)", "agentlightning.train_data=<tasks file>"),
    "data.val_files": ("~/data/rlhf/gsm8k/test.parquet", "validation tasks come from agentlightning.val_data",
                       "agentlightning.val_data=<tasks file>"),
    "trainer.default_local_dir": ("checkpoints/${trainer.project_name}/${trainer.experiment_name}", "checkpoints go "
                                  "to <agentlightning.output_dir>/checkpoints", "agentlightning.output_dir=<folder>"),
    "trainer.val_only": (False, "evaluation has its own scripts", "examples/calc_x/evaluate_calc_agent.py or "
                         "examples/spider/evaluate_sql_agent.py --checkpoint <output folder>"),
    "trainer.resume_mode": (("auto", "disable"), "a run resumes from the latest complete checkpoint under "
                            "agentlightning.output_dir (auto) or starts fresh (disable)",
                            "trainer.resume_mode=auto with agentlightning.output_dir=<the run to resume>"),
    "trainer.critic_warmup": (0, "the critic and the actor update in the same step", "trainer.critic_warmup=0"),
}


def _check_verl_keys(cfg: DictConfig) -> None:
    """Reject verl settings this project cannot honour (on this device, or at all), naming the alternative."""
    for key, (default, why, fix) in _NOT_READ.items():
        value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
        if key == "trainer.default_local_dir":  # compare unresolved: the default interpolates the run's names
            trainer = OmegaConf.to_container(cfg.trainer, resolve=False)
            value = trainer.get("default_local_dir") if isinstance(trainer, dict) else None
        allowed = default if isinstance(default, tuple) else (default,)
        if value is not None and value not in allowed:
            raise ValueError(f"{key}={value!r}: this project does not read it ({why}). Fix: {fix}")
    rollout = cfg.actor_rollout_ref.rollout
    if str(rollout.name) != "vllm":
        raise ValueError(f"actor_rollout_ref.rollout.name={rollout.name!r}: the LLM proxy records token IDs through "
                         "vLLM's OpenAI server (return_token_ids), and the CPU path runs verl's vLLM replicas only. "
                         "Fix: actor_rollout_ref.rollout.name=vllm")
    strategy = str(cfg.actor_rollout_ref.actor.strategy)
    if strategy not in ("fsdp", "fsdp2"):
        raise ValueError(f"actor_rollout_ref.actor.strategy={strategy!r}: the step (agentlightning/verl/ppo_step.py) "
                         "drives verl's FSDP workers. Fix: actor_rollout_ref.actor.strategy=fsdp2")
    estimator = str(cfg.algorithm.adv_estimator)
    if estimator == "gae":
        critic = cfg.critic
        enabled = critic.get("enable")
        path = str(OmegaConf.select(critic, "model.path", default="") or "")
        local = path.startswith(("/", "~", ".")) or not path
        if enabled is False or (local and not Path(path).expanduser().exists()):
            raise ValueError(f"algorithm.adv_estimator=gae with critic.enable={enabled}, critic.model.path={path!r}: "
                             "GAE needs a value model (a critic) to train next to the actor. Fix: "
                             "critic.model.path=${actor_rollout_ref.model.path} (and critic.enable unset or true), or "
                             "algorithm.adv_estimator=grpo (no critic)")
    loggers = cfg.trainer.get("logger") or []
    loggers = [loggers] if isinstance(loggers, str) else list(loggers)
    from agentlightning.verl.metrics import check_loggers

    check_loggers([str(name) for name in loggers])

