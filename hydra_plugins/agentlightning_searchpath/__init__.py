"""Hydra search-path plugin: configs under this repository's `configs/` compose verl's own config tree
(`pkg://verl/trainer/config`, where `ppo_trainer` lives) without each config naming it.

Where this sits: before composition. Hydra lets only the primary config set `hydra.searchpath`, so without this every
runnable YAML repeated it; Hydra imports every module under the `hydra_plugins` namespace package (installed with
agentlightning) and calls `manipulate_search_path`, which adds verl's tree only when the primary config is ours.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

__all__ = ["AgentLightningSearchPath"]

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
VERL_CONFIGS = "pkg://verl/trainer/config"


class AgentLightningSearchPath(SearchPathPlugin):
    """Appends verl's config tree to the search path of compositions rooted in agentlightning's `configs/`."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        paths = [entry.path or "" for entry in search_path.get_path()]
        ours = any(_is_dir(p.removeprefix("file://")) for p in paths if p.startswith("file://") or "://" not in p)
        if ours and VERL_CONFIGS not in paths:
            search_path.append(provider="agentlightning", path=VERL_CONFIGS)


def _is_dir(path: str) -> bool:
    try:
        return Path(path).resolve() == CONFIG_DIR
    except (OSError, RuntimeError):
        return False

