"""Fixtures of the verl tests: the composed CPU config, a real verl actor on the default model (built once per
module: ~10 s), hand-made triplets from the real tokenizer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


def default_model_or_skip() -> str:
    from agentlightning.models import default_model_path, is_prepared

    path = default_model_path()
    if not is_prepared(path):
        pytest.skip(f"the default model is not prepared at {path}. Fix: `make setup` (or `agl model prepare`)")
    return str(path)


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model_or_skip())


@pytest.fixture(scope="session")
def model_path() -> str:
    return default_model_or_skip()


@pytest.fixture(scope="module")
def cpu_config() -> Iterator[Any]:
    default_model_or_skip()
    from agentlightning.verl.config import compose_config

    yield compose_config("agentlightning", ["actor_rollout_ref.actor.optim.lr=1e-4", "trainer.save_freq=1"])
