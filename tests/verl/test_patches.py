"""The patches of verl/vLLM internals (`agentlightning/verl/patches.py`) hold only for the pinned versions: this fails
loudly when a pin changes, and checks the `vllm` distribution shim and the CPU platform's Ray resource."""

from __future__ import annotations

import importlib.metadata
import sysconfig
from pathlib import Path

import pytest

from agentlightning.verl import patches


def test_verl_and_vllm_are_the_versions_the_patches_were_written_for() -> None:
    patches.check_versions()  # raises, naming agentlightning/verl/patches.py, when verl or vLLM changed


def test_a_changed_version_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(patches.PINNED, "verl", "0.9.0")
    with pytest.raises(RuntimeError, match="agentlightning/verl/patches.py was written for .*Fix"):
        patches.check_versions()


def test_the_vllm_shim_names_the_cpu_wheel_for_verl() -> None:
    # verl's own check (verl/workers/rollout/vllm_rollout/__init__.py) reads the distribution `vllm`
    assert importlib.metadata.version("vllm") == patches.VLLM_SHIM_VERSION
    assert patches.shim_folder().joinpath(f"vllm-{patches.VLLM_SHIM_VERSION}.dist-info", "METADATA").is_file()


def test_the_shim_writer_is_idempotent_and_stays_in_its_environment(tmp_path: Path) -> None:
    real_pth = Path(sysconfig.get_paths()["purelib"]) / "agl-shims.pth"
    before = real_pth.read_text() if real_pth.exists() else None
    first = patches.write_vllm_shim(tmp_path)
    assert patches.write_vllm_shim(tmp_path) == first and "Version: 0.32.0+cpu" in (first / "METADATA").read_text()
    (pth,) = tmp_path.rglob("agl-shims.pth")
    # the .pth line is relative to its site-packages (a moved or symlinked environment still finds the shim)
    assert (pth.parent / pth.read_text().strip()).resolve() == patches.shim_folder(tmp_path).resolve()
    assert not Path(pth.read_text().strip()).is_absolute()
    assert (real_pth.read_text() if real_pth.exists() else None) == before  # this environment's shim untouched


def test_cpu_platform_places_work_on_logical_gpus() -> None:
    from agentlightning.verl import cpu_platform

    platform = cpu_platform.platform_class()()
    assert platform.ray_resource_name() == "GPU" and platform.ray_resource_options(1) == {"num_gpus": 1}
    env = platform.rollout_env_vars()
    assert env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0" and "VLLM_CPU_KVCACHE_SPACE" in env


def test_the_weight_sync_extension_is_verls_with_a_cpu_reload() -> None:
    from verl.workers.rollout.vllm_rollout.utils import vLLMColocateWorkerExtension

    extension = patches.CPUWeightSyncExtension
    assert issubclass(extension, vLLMColocateWorkerExtension)
    assert extension.update_weights_from_ipc is not vLLMColocateWorkerExtension.update_weights_from_ipc
    assert f"{extension.__module__}.{extension.__qualname__}" == "agentlightning.verl.patches.CPUWeightSyncExtension"


def test_a_forward_only_reference_model_shards_on_cpu_with_the_unpinned_offload_policy(tmp_path: Path) -> None:
    """verl gives the reference model (use_kl_loss) `CPUOffloadPolicy(pin_memory=True)`; pinning needs an accelerator.
    With the patch, the policy verl builds does not pin, and FSDP2 shards a real module with it on CPU."""
    import torch
    import torch.distributed as dist
    import verl.workers.engine.fsdp.transformer_impl as impl
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, fully_shard

    patches.patch_ref_offload_pin_memory()
    patches.patch_ref_offload_pin_memory()  # idempotent: one subclass, not a chain
    policy = impl.CPUOffloadPolicy(pin_memory=True)  # what verl's engine writes for a forward-only model
    assert policy.pin_memory is False and impl.CPUOffloadPolicy.__mro__[1] is CPUOffloadPolicy
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        module = torch.nn.Linear(4, 2)
        fully_shard(module, mesh=init_device_mesh("cpu", (1,)), offload_policy=policy)
        assert module(torch.ones(1, 4)).shape == (1, 2)
    finally:
        if started:
            dist.destroy_process_group()
