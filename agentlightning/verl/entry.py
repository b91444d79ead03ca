"""The one training entry point: `python -m agentlightning.verl --config-name NAME [Hydra overrides]` trains any
agent that a config under `configs/` names; the example scripts (`examples/calc_x/train_calc_agent.py`,
`examples/spider/train_sql_agent.py`) are this same function with their config name.

Where this sits: in front of the loop. The composed config (verl's `ppo_trainer` + preset + `agentlightning:`
block, validated by `config.py`) names
- the agent, `agentlightning.agent: package.module:attribute`: a `LitAgent` (an `@rollout` function is one), or a
  factory (a `LitAgent` subclass or a function) called with the config block that `agentlightning.agent_config`
  names (e.g. `calc_x:`), so the agent's settings are Hydra keys like any other;
- the tasks: the files `agentlightning.train_data` / `val_data` (JSON list, JSONL or parquet of task dicts), or a
  task factory `agentlightning.tasks: package.module:attribute` called as `factory(block, "train" | "val")`.
Then `trainer_from_config` builds the `Trainer` (store, runners, adapter, `VerlAlgorithm`), `fit` trains, and the
first and last validation are printed side by side (`metrics.held_out_table`) and written to `held_out.json`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from agentlightning.agent import LitAgent
from agentlightning.verl.config import (
    CONFIG_DIR,
    AgentLightningConfig,
    compose_config,
    data_path,
    register_resolvers,
    validate_config,
)
from agentlightning.verl.metrics import held_out, held_out_table

__all__ = ["build_agent", "hydra_main", "load_object", "load_tasks", "sigterm_as_interrupt", "task_splits", "train"]



def load_object(spec: str, key: str) -> Any:
    """Import `package.module:attribute`; errors name the config key, what failed and the fix."""
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ValueError(f"agentlightning.{key}={spec!r}: module {module_name!r} cannot be imported ({exc}). Fix: "
                         "name an importable module (the examples are installed with the project: make setup)"
                         ) from exc
    try:
        return getattr(module, attribute)
    except AttributeError as exc:
        public = sorted(n for n in vars(module) if not n.startswith("_"))
        raise ValueError(f"agentlightning.{key}={spec!r}: {module_name} has no attribute {attribute!r}. Fix: one of "
                         f"{public[:12]}") from exc


def _block(cfg: DictConfig, agl: AgentLightningConfig) -> DictConfig | None:
    """The config block `agentlightning.agent_config` names (None when it names none)."""
    if agl.agent_config is None:
        return None
    if agl.agent_config not in cfg or not isinstance(cfg[agl.agent_config], DictConfig):
        raise ValueError(f"agentlightning.agent_config={agl.agent_config!r}: the config has no block of that name. "
                         "Fix: name a top-level block of settings (e.g. calc_x), or agentlightning.agent_config=null")
    return cfg[agl.agent_config]


def build_agent(cfg: DictConfig, agl: AgentLightningConfig) -> LitAgent:
    """The agent `agentlightning.agent` names: a `LitAgent` as is, or a factory called with its config block."""
    if agl.agent is None:
        raise ValueError("agentlightning.agent is not set. Fix: agentlightning.agent=package.module:attribute (a "
                         "LitAgent, an @rollout function, or a factory with agentlightning.agent_config=<block>)")
    obj = load_object(agl.agent, "agent")
    block = _block(cfg, agl)
    if isinstance(obj, LitAgent):
        if block is not None:
            raise ValueError(f"agentlightning.agent={agl.agent!r} is an agent, not a factory, so the block "
                             f"agentlightning.agent_config={agl.agent_config!r} would be ignored. Fix: name a factory "
                             "that takes the block, or agentlightning.agent_config=null")
        return obj
    if isinstance(obj, type) and issubclass(obj, LitAgent):
        agent = obj(block) if block is not None else obj()
    elif callable(obj) and block is not None:
        agent = obj(block)
    else:
        raise ValueError(f"agentlightning.agent={agl.agent!r} is a {type(obj).__name__}, not a LitAgent. Fix: decorate "
                         "the function with @agentlightning.rollout, or name a factory and set "
                         "agentlightning.agent_config=<the block it takes>")
    if not isinstance(agent, LitAgent):
        raise ValueError(f"agentlightning.agent={agl.agent!r} returned a {type(agent).__name__}, not a LitAgent. Fix: "
                         "return a LitAgent (or an @rollout function) from the factory")
    return agent


def load_tasks(path: str | None, key: str = "train_data") -> list[dict[str, Any]] | None:
    """Task dicts from a .json (list), .jsonl or .parquet file (a relative path is tried from the working directory,
    then from the repository); None for None."""
    if path is None:
        return None
    file = data_path(path)
    if not file.is_file():
        raise FileNotFoundError(f"agentlightning.{key}={path!r}: no such file. Fix: agentlightning.{key}=<an existing "
                                ".json/.jsonl/.parquet file of task dicts>")
    if file.suffix == ".parquet":
        import pandas as pd

        rows = pd.read_parquet(file).to_dict("records")
    elif file.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(file.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"agentlightning.{key}={path!r}, line {number}: not JSON ({exc.msg}). Fix: one "
                                     "JSON object per line") from exc
    else:
        rows = json.loads(file.read_text())
        if not isinstance(rows, list):
            raise ValueError(f"agentlightning.{key}={path!r} holds a {type(rows).__name__}. Fix: a JSON list of task "
                             "dicts (or .jsonl, one per line)")
    if not rows:
        raise ValueError(f"agentlightning.{key}={path!r} holds no tasks. Fix: a file with at least one task")
    return rows


def task_splits(cfg: DictConfig, agl: AgentLightningConfig) -> tuple[list[Any], list[Any]]:
    """(train, val) tasks: from the task factory `agentlightning.tasks`, else from the task files."""
    if agl.tasks is not None:
        factory = load_object(agl.tasks, "tasks")
        block = _block(cfg, agl)
        train, val = factory(block, "train"), factory(block, "val")
    else:
        if agl.train_data is None:
            raise ValueError("agentlightning.train_data is not set. Fix: agentlightning.train_data=<tasks .jsonl> "
                             "(or a task factory: agentlightning.tasks=package.module:attribute)")
        train, val = load_tasks(agl.train_data), load_tasks(agl.val_data, "val_data") or []
    if not train:
        raise ValueError(f"no training tasks (agentlightning.tasks={agl.tasks!r}, train_data={agl.train_data!r}). "
                         "Fix: point them at tasks")
    return list(train), list(val or [])


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises `KeyboardInterrupt` (in the main thread), so the clean-up of a Ctrl-C runs: without
    it Python dies at once, and Ray's dashboard and runtime-env agents outlive the run (measured with Ray 2.60;
    the next start reaps them, `ray_policy.reap_orphaned_ray_agents`). Outside, the previous handler is back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Train what `cfg` describes; print and return the held-out before/after (empty when nothing ran)."""
    from agentlightning.verl.algorithm import trainer_from_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the progress bar
    agl = validate_config(cfg)
    agent = build_agent(cfg, agl)
    train_tasks, val_tasks = task_splits(cfg, agl)
    output = Path(agl.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    trainer = trainer_from_config(cfg)
    print(f"{cfg.trainer.project_name}: training {type(agent).__name__} on {len(train_tasks)} tasks, validating on "
          f"{len(val_tasks)}; policy {cfg.actor_rollout_ref.model.path}; output in {output}", flush=True)
    with sigterm_as_interrupt():  # `kill PID` stops the run as Ctrl-C does: runners, Ray and its replicas shut down
        history = trainer.fit(agent, train_tasks, val_tasks)
    if not history:
        print(f"\nnothing to do: {output / 'checkpoints'} already holds step {cfg.trainer.total_training_steps}. "
              "Fix: raise trainer.total_training_steps to continue, or trainer.resume_mode=disable to start over",
              flush=True)
        return {}
    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines() if line.strip()]
    result = held_out(rows)
    if result:
        print("\n" + held_out_table(result, "held-out (validation)"), flush=True)
        (output / "held_out.json").write_text(json.dumps({**result, "step": result["after"]["step"]}))
    loggers = OmegaConf.to_container(cfg.trainer.logger) if "logger" in cfg.trainer else []
    print(f"\naccuracy curve: {output / 'reward_curve.png'}; metrics: {output / 'metrics.jsonl'} (and {loggers}); "
          f"checkpoints: {output / 'checkpoints'}", flush=True)
    return result


def hydra_main(config_name: str) -> Callable[[], Any]:
    """`train` as a Hydra command line over `configs/<config_name>.yaml` (`--config-name` picks another; `--cfg job`
    prints the composed config after the same validation as training; `--help` lists groups and keys)."""
    import hydra

    register_resolvers()
    entry = hydra.main(config_path=str(CONFIG_DIR), config_name=config_name, version_base=None)(train)

    def main() -> Any:
        argv = sys.argv[1:]
        if "--cfg" in argv or "-c" in argv:  # Hydra prints and exits without running train: validate first
            name, overrides = _cli_overrides(argv, config_name)
            try:
                compose_config(name, overrides)
            except (ValueError, FileNotFoundError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                raise SystemExit(1) from None
        return entry()

    return main


_FLAGS_WITH_VALUE = {"--cfg", "-c", "--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd",
                     "--package", "-p", "--info", "-i", "--experimental-rerun"}


def _cli_overrides(argv: list[str], default_name: str) -> tuple[str, list[str]]:
    """(config name, Hydra overrides) of a command line, without Hydra's own flags."""
    name, overrides, skip = default_name, [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg in ("--config-name", "-cn") and i + 1 < len(argv):
            name = argv[i + 1]
        if arg in _FLAGS_WITH_VALUE:
            skip = True
        elif arg.startswith("--config-name="):
            name = arg.split("=", 1)[1]
        elif not arg.startswith("-"):
            overrides.append(arg)
    return name, overrides
