"""Serving the policy: start and stop vLLM's OpenAI server (`VLLMServer`), the endpoint the LLM proxy forwards to.

Where this sits: task → store → runner → agent → proxy → **vLLM** → spans → adapter → verl.
"""

from agentlightning.serving.vllm_server import (
    VLLMServer,
    VLLMServerError,
    build_vllm_command,
    cpu_env_defaults,
    find_free_port,
    is_cpu_platform,
    serving_dtype,
)

__all__ = ["VLLMServer", "VLLMServerError", "build_vllm_command", "cpu_env_defaults", "find_free_port",
           "is_cpu_platform", "serving_dtype"]
