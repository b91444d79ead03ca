"""The LLM proxy: agents call it like an OpenAI server; it load-balances over vLLM replicas and records every call
(prompt and response token IDs) as an `llm.call` span in the store.

Where this sits: task → store → runner → agent → **proxy** → vLLM → **spans** → adapter → verl.
`server.py` (LLMProxy: serving, lifecycle), `app.py` (ProxyApp: routes and their state), `backends.py` (replica
pool), `recording.py` (span contract).
"""

from agentlightning.proxy.backends import AllBackendsFailedError, BackendPool, normalize_backend_url
from agentlightning.proxy.recording import SPAN_NAME, StreamAccumulator, build_span
from agentlightning.proxy.server import LLMProxy

__all__ = ["SPAN_NAME", "AllBackendsFailedError", "BackendPool", "LLMProxy", "StreamAccumulator", "build_span",
           "normalize_backend_url"]
