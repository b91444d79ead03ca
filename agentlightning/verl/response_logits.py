"""verl's FSDP language-model engine with logits only where the loss reads them: the CPU preset's training engine.

Where this sits: verl batch → **update: the forward of each micro-batch** → loss → weights. `cpu_platform.py`
registers `ResponseLogitsEngine` for device "cpu" in place of verl's `FSDPEngineWithLMHead` (verl 0.9.1,
`verl/workers/engine/fsdp/transformer_impl.py`), which it subclasses; on GPUs verl's own engine runs.

What it changes. On the path the CPU preset takes (no remove-padding: flash-attn varlen kernels do not exist on CPU;
no fused kernels; no top-k distillation) verl pads the micro-batch's prompt+response sequences to (B, T), projects the
hidden state of *every* position onto the vocabulary (49,152 columns for SmolLM2), takes log-softmax and entropy of
all of them, and the loss (`ppo_loss` → `no_padding_2_padding`) then reads only the positions that predict response
tokens: position `prompt_len_i - 1` on. With ~200-token prompts and ~40-token responses that is 5/6 of the
vocabulary projection, its backward and the log-softmax thrown away (`benchmarks/update_cost.py`: the same
micro-batch 1.20× faster with response logits only).

This engine asks the model for the last `T - k` positions only (`logits_to_keep`, which Hugging Face causal LMs
accept), where `k = min_i(prompt_len_i) - 1` is the first position any sample's loss reads. Log-probs and entropy of
positions before `k` are returned as 0: the same nested (B, prompt+response) layout verl's engine returns, with the
same values at every position a loss or metric reads (tests/verl/test_response_logits.py compares both engines'
log-probs, entropy and gradients). Anything else — remove-padding, fused kernels, distillation, Σπ², batches without
a nested `prompts` field (SFT) — goes to verl's code unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch.distributed.tensor import DTensor
from verl.utils import tensordict_utils as tu
from verl.utils import torch_functional as verl_F
from verl.utils.dataset.dataset_utils import DatasetPadMode
from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead, _scale_logits_by_temperature

__all__ = ["ResponseLogitsEngine", "first_read_position"]

logger = logging.getLogger(__name__)

_KEEP_FROM = "agl_keep_from"
_PADDED_IDS = "agl_padded_input_ids"


def first_read_position(micro_batch: TensorDict) -> int | None:
    """The first position whose log-prob the PPO loss reads (`min prompt length - 1`), or None when this engine's
    shortcut does not apply to the micro-batch (verl's own code then runs)."""
    def flag(key: str, default: Any) -> Any:
        return tu.get_non_tensor_data(data=micro_batch, key=key, default=default)

    if (flag("use_remove_padding", True) or flag("use_fused_kernels", False) or flag("distillation_use_topk", False)
            or flag("calculate_sum_pi_squared", False) or flag("pad_mode", DatasetPadMode.NO_PADDING)
            != DatasetPadMode.NO_PADDING):
        return None
    lengths = _prompt_lengths(micro_batch)
    if lengths is None:
        return None
    keep_from = int(lengths.min().item()) - 1
    return keep_from if keep_from > 0 else None


def _prompt_lengths(micro_batch: TensorDict) -> torch.Tensor | None:
    """Each sample's prompt length, read as verl's `no_padding_2_padding` reads it (the loss's own reading): from a
    nested `prompts`, or from the padded `prompts` width of `attention_mask` (how verl's trainer sends them)."""
    keys = set(micro_batch.keys())
    if "prompts" not in keys:
        return None
    prompts = micro_batch["prompts"]
    if prompts.is_nested:
        return prompts.offsets().diff()
    if "attention_mask" not in keys or micro_batch["attention_mask"].is_nested:
        return None
    return micro_batch["attention_mask"][:, : prompts.shape[1]].sum(dim=1)


class ResponseLogitsEngine(FSDPEngineWithLMHead):
    """`FSDPEngineWithLMHead` whose forward projects onto the vocabulary only from the first position a loss reads.

    `response_logits_micro_batches` counts the micro-batches that took this path (the rest ran verl's code)."""

    response_logits_micro_batches: int = 0

    def prepare_model_inputs(self, micro_batch: TensorDict) -> tuple[dict[str, Any], dict[str, Any]]:
        model_inputs, output_args = super().prepare_model_inputs(micro_batch)
        keep_from = first_read_position(micro_batch)
        if keep_from is not None:
            padded_ids = model_inputs["input_ids"]  # (B, T), right-padded by verl
            model_inputs["logits_to_keep"] = padded_ids.shape[1] - keep_from
            output_args[_KEEP_FROM] = keep_from
            output_args[_PADDED_IDS] = padded_ids
            self.response_logits_micro_batches += 1
            if self.response_logits_micro_batches == 1:
                logger.info("ResponseLogitsEngine: logits from position %d of %d (%d sequences in the first micro-batch)",
                            keep_from, padded_ids.shape[1], padded_ids.shape[0])
        return model_inputs, output_args

    def prepare_model_outputs(self, output: Any, output_args: dict[str, Any], micro_batch: TensorDict,
                              logits_processor_func: Any) -> dict[str, torch.Tensor]:
        keep_from = output_args.get(_KEEP_FROM)
        if keep_from is None:
            return super().prepare_model_outputs(output, output_args, micro_batch, logits_processor_func)
        logits = output.logits  # (B, T - keep_from, vocab)
        if isinstance(logits, DTensor):
            logits = logits.full_tensor()
        temperature = output_args["temperature"].unsqueeze(-1).unsqueeze(-1)
        logits = _scale_logits_by_temperature(logits, temperature,
                                              is_unit_temperature=output_args.get("temperature_is_one", False))
        labels = torch.roll(output_args[_PADDED_IDS], shifts=-1, dims=1)[:, keep_from:]  # the next token
        model_output = {"log_probs": self._to_nested(verl_F.logprobs_from_logits(logits, labels), keep_from,
                                                     micro_batch)}
        if tu.get_non_tensor_data(data=micro_batch, key="calculate_entropy", default=False):
            if self.engine_config.entropy_checkpointing:
                entropy = torch.utils.checkpoint.checkpoint(verl_F.entropy_from_logits, logits)
            else:
                entropy = verl_F.entropy_from_logits(logits)
            model_output["entropy"] = self._to_nested(entropy, keep_from, micro_batch)
        return model_output

    @staticmethod
    def _to_nested(values: torch.Tensor, keep_from: int, micro_batch: TensorDict) -> torch.Tensor:
        """(B, T - keep_from) per-position values → verl's nested (B, j1) layout, 0 before `keep_from`."""
        full = F.pad(values, (keep_from, 0))  # (B, T)
        cu_seqlens = micro_batch["input_ids"].offsets()
        lengths = cu_seqlens.diff()
        valid = torch.arange(full.shape[1], device=full.device) < lengths.unsqueeze(1)
        return torch.nested.nested_tensor_from_jagged(full[valid], cu_seqlens)
