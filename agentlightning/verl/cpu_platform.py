"""A CPU device platform for verl 0.9.1, so verl's own FSDP2 training engine runs on machines without a GPU.

Where this sits: … → triplets → verl batch → **verl's TrainingWorker / FSDP engine (on CPU through this module)** →
new weights → vLLM. On GPUs none of this is used: verl picks its CUDA platform by itself.

What verl 0.9.1 lacks on CPU, and the hook used for each (smallest set found by reading verl's source):

1. No CPU platform: `verl.plugin.platform.get_platform()` falls back to 'nvidia'. **Hook**: we register
   `PlatformCPU` under the name "cpu" with `PlatformRegistry.register` and select it with `VERL_PLATFORM=cpu`.
   To make every process (Ray workers included) see it, `VERL_USE_EXTERNAL_MODULES` lists
   `agentlightning.verl.verl_plugin`: verl's `__init__` imports the listed modules (`import_external_libs`).
2. `torch.cpu` lacks the CUDA-style memory statistics verl reads (`max_memory_allocated`, `mem_get_info`,
   `empty_cache`, `ipc_collect`, RNG state ...). **Hook**: the platform's `device_module` is our `cpu_device_module`,
   a namespace that forwards to `torch.cpu` and fills the gaps (process RSS for "allocated", psutil for free memory).
3. The gloo/nccl backend string verl builds (`cpu:gloo,cpu:gloo` on CPU): a monkeypatch, in `patches.py` with the
   other patches of verl/vLLM internals; `install_hooks()` applies it.
4. FSDP engines are registered for devices cuda/npu only. **Hook**: `EngineRegistry.register(..., device="cpu")` with
   verl's own `FSDPEngineWithValueHead` and, for the language model, `ResponseLogitsEngine` (`response_logits.py`):
   verl's `FSDPEngineWithLMHead` computing logits only from the first position the loss reads (1.2x on the update).
5. Attention and padding: verl defaults to flash_attention_2 and remove-padding (flash-attn varlen kernels). These
   are config, not code: `model.override_config.attn_implementation=sdpa`, `model.use_remove_padding=false` (the
   `cpu` preset in configs/ sets both; `verl/config.py` refuses the flash-attn settings on CPU with the fix).
6. Ray placement: verl places its FSDP workers and vLLM replicas on bundles of the platform's Ray resource and checks
   that enough exist ("Total available GPUs 0 is less than total desired GPUs 1"). **Hook**: the platform names its
   resource "GPU" (`ray_resource_name`, `ray_resource_options`), and on CPU `RayPPOPolicy` starts Ray with that many
   *logical* GPUs (`ray.init(num_gpus=N)`): each stands for one training rank and its colocated vLLM replica. verl's
   replicas also read the accelerator ids by that name (else "KeyError: 'CPU'" in `vllm_async_server.py`).
   `rollout_env_vars()` gives the replicas vLLM's CPU settings (KV-cache size, OpenMP threads).

`activate()` must run before `verl.workers.engine` is imported (verl reads the device name at import time). It is
idempotent; calling it in a process that already chose a non-CPU platform raises with the fix.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import types
from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["PLATFORM_NAME", "activate", "cpu_device_module", "install_hooks", "platform_class", "register_platform",
           "rollout_env_vars", "select_if_no_gpu"]

logger = logging.getLogger(__name__)

PLATFORM_NAME = "cpu"
_MODULE = __name__
_PLUGIN_MODULE = "agentlightning.verl.verl_plugin"


# ------------------------------------------------------------------------------------------ torch.<device> stand-in
def _rss() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:  # noqa: BLE001 - statistics only
        return 0


def _mem_get_info(device: Any = None) -> tuple[int, int]:
    import psutil

    vm = psutil.virtual_memory()
    return int(vm.available), int(vm.total)


def _noop(*_args: Any, **_kwargs: Any) -> None:
    return None


class _CpuDeviceModule(types.SimpleNamespace):
    """`torch.cpu` plus the CUDA-style calls verl makes through `get_torch_device()` (gaps filled, see docstring)."""

    def __getattr__(self, name: str) -> Any:  # everything else: torch.cpu's own attribute (clear error if missing)
        return getattr(torch.cpu, name)


cpu_device_module = _CpuDeviceModule(
    is_available=lambda: True,
    device_count=lambda: 1,
    current_device=lambda: "cpu",  # `tensor.to(get_device_id())` must mean CPU, not cuda:0
    set_device=_noop,
    synchronize=_noop,
    empty_cache=_noop,
    ipc_collect=_noop,
    set_per_process_memory_fraction=_noop,
    reset_peak_memory_stats=_noop,
    memory_allocated=lambda *_a, **_k: _rss(),
    memory_reserved=lambda *_a, **_k: _rss(),
    max_memory_allocated=lambda *_a, **_k: _rss(),
    max_memory_reserved=lambda *_a, **_k: _rss(),
    mem_get_info=_mem_get_info,
    get_device_name=lambda *_a, **_k: "cpu",
    get_rng_state=lambda *_a, **_k: torch.get_rng_state(),
    set_rng_state=lambda state, *_a, **_k: torch.set_rng_state(state),
    manual_seed=torch.manual_seed,
    manual_seed_all=torch.manual_seed,
)


# ------------------------------------------------------------------------------------------------------ platform
def _platform_base() -> type:
    from verl.plugin.platform import PlatformBase

    return PlatformBase


class _PlatformCPUImpl:
    """Method bodies of the CPU platform (mixed into verl's `PlatformBase` by `platform_class`)."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> Any:
        return cpu_device_module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # Never auto-detected: only chosen explicitly with VERL_PLATFORM=cpu, so GPU machines keep CUDA.
        return False

    def current_device(self) -> str:  # type: ignore[override]
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextlib.contextmanager
    def nvtx_range(self, msg: str) -> Iterator[None]:
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"  # logical GPUs (see the module docstring, 6)

    def ray_resource_options(self, num_gpus: float) -> dict[str, Any]:
        return {"num_gpus": num_gpus}

    def rollout_env_vars(self) -> dict[str, str]:
        return rollout_env_vars()

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


@functools.cache
def platform_class() -> type:
    """verl's `PlatformBase` subclass for CPU (built on first use, so importing this module does not import verl)."""
    base = _platform_base()
    body = {k: v for k, v in vars(_PlatformCPUImpl).items() if not k.startswith("__")}
    body["__doc__"] = "verl platform for CPU-only machines (gloo, torch.cpu with memory statistics filled in)."
    body["__module__"] = _MODULE
    return type("PlatformCPU", (_PlatformCPUImpl, base), body)


# ------------------------------------------------------------------------------------------------------ hooks
def register_platform() -> None:
    """Register `platform_class()` as verl platform "cpu" (idempotent)."""
    from verl.plugin.platform import PlatformRegistry

    if PlatformRegistry.get(PLATFORM_NAME) is not platform_class():
        PlatformRegistry.register(platform=PLATFORM_NAME)(platform_class())


def _register_engines() -> None:
    from verl.workers.engine import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithValueHead

    from agentlightning.verl.response_logits import ResponseLogitsEngine

    for model_type, cls in (("language_model", ResponseLogitsEngine), ("value_model", FSDPEngineWithValueHead)):
        registered = EngineRegistry._engines.get(model_type, {})
        for backend in ("fsdp", "fsdp2"):
            if PLATFORM_NAME not in registered.get(backend, {}):
                EngineRegistry.register(model_type=model_type, backend=backend, device=PLATFORM_NAME)(cls)


def _add_external_module_env() -> None:
    modules = [m for m in os.environ.get("VERL_USE_EXTERNAL_MODULES", "").split(",") if m]
    if _PLUGIN_MODULE not in modules:
        os.environ["VERL_USE_EXTERNAL_MODULES"] = ",".join([*modules, _PLUGIN_MODULE])


def activate() -> None:
    """Make verl run on CPU in this process and in processes it starts (Ray workers). Idempotent.

    Order matters: platform registered and chosen, then the engine registry (this imports verl's engine modules,
    which read the device name), then the backend patch (after `engine_workers` imported the function)."""
    os.environ["VERL_PLATFORM"] = PLATFORM_NAME
    _add_external_module_env()
    register_platform()
    from verl.plugin.platform import platform_manager

    current = platform_manager._current_platform
    if current is not None and current.device_name != "cpu":
        raise RuntimeError(
            f"verl already chose platform {current.device_name!r} in this process, so it cannot run on CPU. "
            "Fix: call agentlightning.verl.cpu_platform.activate() before importing verl's workers/engines, "
            f"or start the process with VERL_PLATFORM=cpu VERL_USE_EXTERNAL_MODULES={_PLUGIN_MODULE}")
    install_hooks()


def install_hooks() -> None:
    """Engine registration for device cpu, the backend-string patch and the unpinned offload policy of forward-only
    (reference) models (idempotent; the platform must be chosen)."""
    import verl.workers.engine_workers  # noqa: F401 - imported now so the backend patch reaches its binding

    from agentlightning.verl.patches import patch_process_group_backend, patch_ref_offload_pin_memory

    _register_engines()
    patch_process_group_backend()
    patch_ref_offload_pin_memory()


def select_if_no_gpu() -> bool:
    """On a machine without an NVIDIA GPU, choose this platform for verl (env only, verl not imported) unless
    `VERL_PLATFORM` is already set. Called when `agentlightning.verl` is imported, so verl's device detection (which
    runs once, at the first import of its engines) never settles on CUDA here. Returns True when selected."""
    from agentlightning.serving.vllm_server import is_cpu_platform

    if os.environ.get("VERL_PLATFORM") or not _no_cuda(is_cpu_platform):
        return os.environ.get("VERL_PLATFORM", "").strip().lower() == PLATFORM_NAME
    os.environ["VERL_PLATFORM"] = PLATFORM_NAME
    _add_external_module_env()
    import sys

    if "verl" in sys.modules:  # verl imported before us: its __init__ did not load this module; register now
        register_platform()
    return True


def _no_cuda(is_cpu_platform: Any) -> bool:
    if not is_cpu_platform():
        return False
    try:
        return not torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        return True


def rollout_env_vars() -> dict[str, str]:
    """vLLM's CPU settings for verl's replicas: the same defaults as our own `VLLMServer` (all cores of this process's
    affinity, 1 GiB KV cache, none reserved), the caller's environment winning."""
    from agentlightning.serving.vllm_server import cpu_env_defaults

    keys = ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_NUM_OF_RESERVED_CPU", "VLLM_CPU_OMP_THREADS_BIND")
    return {**cpu_env_defaults({}), **{k: os.environ[k] for k in keys if k in os.environ}}
