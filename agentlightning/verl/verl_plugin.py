"""verl plugin entry: imported by verl's own `__init__` (listed in `VERL_USE_EXTERNAL_MODULES`), registers the CPU
platform so that `VERL_PLATFORM=cpu` resolves in every process verl starts (Ray workers included), and with
`VERL_PLATFORM=cpu` also installs the engine registration and the gloo backend fix (`cpu_platform.install_hooks`).

Where this sits: before verl picks its device; see `cpu_platform.py`. Never imported by agentlightning itself, so its
module body runs exactly when verl loads it.
"""

from __future__ import annotations

import os

from agentlightning.verl.cpu_platform import PLATFORM_NAME, install_hooks, register_platform

__all__: list[str] = []

register_platform()
if os.environ.get("VERL_PLATFORM", "").strip().lower() == PLATFORM_NAME:
    install_hooks()  # engines for device cpu + the gloo backend fix, before any verl worker module is imported
