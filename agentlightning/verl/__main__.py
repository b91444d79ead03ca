"""`python -m agentlightning.verl [--config-name NAME] [hydra overrides...]`: train an agent with the configs/ YAML.

Where this sits: the command-line front of `VerlAlgorithm` (the loop: rollouts → adapter → verl update → weights into
vLLM). It composes `configs/<NAME>.yaml` (default `agentlightning`) with the overrides, loads the agent named by
`agentlightning.agent` ("module:attribute") and the tasks of `agentlightning.train_data` / `val_data` (JSON list,
JSONL or parquet), builds a `Trainer` with the block's store and runner settings, and runs `fit`.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["load_tasks", "main"]


def load_tasks(path: str | None) -> list[dict[str, Any]] | None:
    """Task dicts from a .json (list), .jsonl or .parquet file; None for None."""
    if path is None:
        return None
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"task file {path!r} does not exist. Fix: agentlightning.train_data=<existing file>")
    if file.suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(file).to_dict("records")
    text = file.read_text()
    if file.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError(f"{path} holds a {type(data).__name__}; a task file is a JSON list of task dicts")
    return data


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    name = "agentlightning"
    if "--config-name" in args:
        i = args.index("--config-name")
        name = args[i + 1]
        del args[i:i + 2]
    from agentlightning.verl.algorithm import trainer_from_config
    from agentlightning.verl.config import compose_config, validate_config

    cfg = compose_config(name, args)
    agl = validate_config(cfg)
    if not agl.agent or not agl.train_data:
        raise SystemExit("agentlightning.agent=module:attribute and agentlightning.train_data=<file> are required")
    module, _, attr = agl.agent.partition(":")
    agent = getattr(importlib.import_module(module), attr)
    trainer = trainer_from_config(cfg)
    trainer.fit(agent, load_tasks(agl.train_data), load_tasks(agl.val_data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
