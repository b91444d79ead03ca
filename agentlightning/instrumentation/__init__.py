"""Instrumentation of the serving stack so every LLM call yields exact token IDs.

Where this sits: task → store → runner → agent → proxy → **vLLM** → spans → adapter → verl.
"""

from agentlightning.instrumentation.vllm import (
    NATIVE_TOKEN_IDS_VERSION,
    InstrumentMode,
    instrument_vllm,
    is_instrumented,
    uninstrument_vllm,
    vllm_version,
)

__all__ = ["NATIVE_TOKEN_IDS_VERSION", "InstrumentMode", "instrument_vllm", "is_instrumented", "uninstrument_vllm",
           "vllm_version"]
