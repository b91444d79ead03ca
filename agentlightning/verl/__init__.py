"""verl integration: trajectories from any agent become verl PPO/GRPO updates; new weights go back into vLLM.

Where this sits: … adapter → triplets → **batch (`batch.py`) → verl's RayPPOTrainer (`ray_policy.py`: FSDP ranks,
vLLM rollout replicas, weight sync; the step is `ppo_step.py`; on CPU through `cpu_platform.py` and `patches.py`)**,
looped by `VerlAlgorithm` (`algorithm.py`) with the Hydra config of `configs/` (`config.py`). Heavy imports (verl)
happen only when a name is used.

On a machine without an NVIDIA GPU, importing this package selects verl's CPU platform (`VERL_PLATFORM=cpu`, see
`cpu_platform.select_if_no_gpu`) unless `VERL_PLATFORM` is already set.
"""

from __future__ import annotations

from typing import Any

from agentlightning.verl.cpu_platform import select_if_no_gpu

__all__ = ["VerlAlgorithm", "compose_config"]

select_if_no_gpu()


def __getattr__(name: str) -> Any:
    if name == "VerlAlgorithm":
        from agentlightning.verl.algorithm import VerlAlgorithm

        return VerlAlgorithm
    if name == "compose_config":
        from agentlightning.verl.config import compose_config

        return compose_config
    raise AttributeError(f"module 'agentlightning.verl' has no attribute {name!r}")
