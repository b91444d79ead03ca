"""Where the CPU update's time goes, and what each lever of issue #14 would save: one policy-gradient micro-batch of
the calc_x demo's shape (forward, backward, Adam step) on the default model, timed under variants of the same
computation, each printed as a ratio to the first (what verl's FSDP engine does today), measured in the same run.

Where this sits: the `update` part of a step (verl batch → update → weights), without Ray, FSDP or vLLM, so that
only the model's arithmetic is timed. verl's engine (`verl/workers/engine/fsdp/transformer_impl.py`, non-rmpad
path, which the CPU preset uses: no flash-attention varlen on CPU) computes logits, log-probs and — with
`calculate_entropy` — the entropy for every position of every sequence (prompt and response) and masks the loss
to the response; the demo's prompts are ~200 tokens and its responses ~35.

Variants (all give the same loss on response tokens, except where noted):
- `verl today`: full logits, log-softmax and entropy at every position.
- `no entropy`: the same without the entropy (`actor.calculate_entropy=false`; the cpu preset turns it on only to
  log `actor/entropy`).
- `response logits`: the model's hidden states for every position, but the vocabulary projection, log-softmax and
  entropy only from the first response position on (`logits_to_keep`).
- `frozen embeddings`: `response logits` with the tied embedding / LM head frozen (changes training: no update of
  the 28M embedding parameters).
- `lora r=N`: `response logits` with LoRA adapters (peft) on every linear layer and the base frozen (changes training).

Run: .venv/bin/python benchmarks/update_cost.py [--samples 8] [--prompt 200] [--response 40] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from transformers import AutoModelForCausalLM

from agentlightning.models import default_model_path

__all__ = ["main"]


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    pd = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (pd * logits).sum(-1)


def _step(model: torch.nn.Module, optim: torch.optim.Optimizer, ids: torch.Tensor, prompt: int, keep_from: int,
          entropy: bool) -> float:
    """One micro-batch: loss = -mean log p(response tokens), as the PG loss weights them; returns seconds."""
    started = time.perf_counter()
    logits = model(input_ids=ids, logits_to_keep=ids.shape[1] - keep_from).logits  # positions keep_from..T-1
    labels = ids[:, keep_from + 1:]
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    ent = _entropy(logits) if entropy else None  # kept until after backward, as verl keeps it for its metrics
    mask = torch.zeros_like(logp)
    mask[:, prompt - 1 - keep_from:] = 1.0  # positions predicting response tokens
    loss = -(logp * mask).sum() / mask.sum()
    loss.backward()
    del ent
    optim.step()
    optim.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def _variant(name: str, make: Callable[[], torch.nn.Module], ids: torch.Tensor, prompt: int, keep_from: int,
             entropy: bool, repeats: int) -> tuple[str, float, int]:
    model = make()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-6)
    _step(model, optim, ids, prompt, keep_from, entropy)  # warm-up (allocations, Adam state)
    times = [_step(model, optim, ids, prompt, keep_from, entropy) for _ in range(repeats)]
    return name, statistics.median(times), sum(p.numel() for p in params)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=8, help="sequences per micro-batch (the demo: ~8 per 2048 tokens)")
    parser.add_argument("--prompt", type=int, default=200, help="prompt tokens per sequence")
    parser.add_argument("--response", type=int, default=40, help="response tokens per sequence")
    parser.add_argument("--repeats", type=int, default=5, help="timed micro-batches per variant (median reported)")
    parser.add_argument("--lora-rank", type=int, default=16)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    path = str(default_model_path())

    def base() -> torch.nn.Module:
        return AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)

    def frozen_embeddings() -> torch.nn.Module:
        model = base()
        model.get_input_embeddings().weight.requires_grad_(False)  # tied: the LM head too
        return model

    def lora() -> torch.nn.Module:
        from peft import LoraConfig, get_peft_model

        return get_peft_model(base(), LoraConfig(r=args.lora_rank, lora_alpha=2 * args.lora_rank,
                                                 target_modules="all-linear"))

    ids = torch.randint(100, 40000, (args.samples, args.prompt + args.response))
    keep = args.prompt - 1
    rows = [
        _variant("verl today", base, ids, args.prompt, 0, True, args.repeats),
        _variant("no entropy", base, ids, args.prompt, 0, False, args.repeats),
        _variant("response logits", base, ids, args.prompt, keep, True, args.repeats),
        _variant("response logits, no entropy", base, ids, args.prompt, keep, False, args.repeats),
        _variant("frozen embeddings", frozen_embeddings, ids, args.prompt, keep, True, args.repeats),
        _variant(f"lora r={args.lora_rank}", lora, ids, args.prompt, keep, True, args.repeats),
    ]
    print(f"update_cost: {args.samples} x ({args.prompt} prompt + {args.response} response) tokens per micro-batch, "
          f"forward + backward + AdamW, median of {args.repeats}, {torch.get_num_threads()} threads")
    print(f"{'variant':<30} {'seconds':>8} {'vs verl today':>14} {'trained params':>15}")
    first = rows[0][1]
    for name, seconds, trained in rows:
        print(f"{name:<30} {seconds:>8.3f} {first / seconds:>13.2f}x {trained / 1e6:>14.1f}M")


if __name__ == "__main__":
    main()
