"""The replica pool of the LLM proxy: least-outstanding-requests balancing, failover retries, runtime changes.

Where this sits: task → store → runner → agent → **proxy** → vLLM → spans → adapter → verl. Every agent call the proxy
receives is sent to one vLLM replica picked here; if the replica cannot be reached or answers 5xx, the call is
retried on another one (up to `num_retries` extra tries), and the failing replica is avoided for `cooldown_s`.

Rules:
- Pick: among replicas not excluded for this call, the healthy ones (not in cooldown) first, then the fewest
  outstanding requests, ties broken round-robin. A replica in cooldown is still used when nothing else is left.
- Retried: connection errors, connect timeouts, a connection dropped before the response head, and 5xx answers.
  Not retried: 4xx (the request is wrong, another replica would say the same) and read timeouts (the generation may
  have run; repeating it doubles the cost). A streamed response is never retried once its first byte went out.
- `add_backend` / `remove_backend` / `replace_backends` take effect for the next pick; calls in flight on a removed
  replica finish normally.
- After the last try `AllBackendsFailedError` lists every try and its cause (the proxy answers 502 with it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["AllBackendsFailedError", "Backend", "BackendPool", "normalize_backend_url"]

logger = logging.getLogger(__name__)


class AllBackendsFailedError(RuntimeError):
    """Every try failed; `attempts` holds (backend url, cause) pairs in order."""

    def __init__(self, attempts: list[tuple[str, str]], configured: list[str]):
        self.attempts = attempts
        self.configured = configured
        tries = "; ".join(f"{url}: {cause}" for url, cause in attempts) or "no backend configured"
        super().__init__(f"all LLM backends failed after {len(attempts)} tries ({tries}). Backends configured: "
                         f"{configured or 'none'}. Fix: check that vLLM is running at those URLs "
                         "(`curl URL/health`), or add one with LLMProxy.add_backend(url).")


def normalize_backend_url(url: str) -> str:
    """`http://host:port` from `http://host:port`, `.../` or `.../v1`; rejects anything that is not http(s)."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"backend URL {url!r} must start with http:// or https:// (e.g. 'http://127.0.0.1:8000/v1')")
    root = url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


@dataclass
class Backend:
    """One vLLM replica and its live counters."""

    url: str
    outstanding: int = 0
    served: int = 0
    failures: int = 0
    down_until: float = 0.0
    last_error: str | None = field(default=None, repr=False)

    def snapshot(self) -> dict[str, Any]:
        return {"url": self.url, "outstanding": self.outstanding, "served": self.served, "failures": self.failures,
                "healthy": self.down_until <= time.monotonic(), "last_error": self.last_error}


def _retryable(exc: httpx.HTTPError) -> bool:
    if isinstance(exc, httpx.TimeoutException):
        return isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
    return isinstance(exc, httpx.TransportError)


class BackendPool:
    """The replicas of one proxy. Not thread-safe: use it from the proxy's event loop."""

    def __init__(self, urls: Iterable[str], num_retries: int = 2, cooldown_s: float = 5.0):
        if num_retries < 0:
            raise ValueError(f"num_retries={num_retries} must be >= 0 (0 = one try, no failover)")
        self.num_retries = num_retries
        self.cooldown_s = cooldown_s
        self._backends: dict[str, Backend] = {}
        self._turn = 0
        for url in urls:
            self.add_backend(url)

    # ------------------------------------------------------------------ membership
    @property
    def urls(self) -> list[str]:
        return list(self._backends)

    def snapshot(self) -> list[dict[str, Any]]:
        return [b.snapshot() for b in self._backends.values()]

    def add_backend(self, url: str) -> None:
        root = normalize_backend_url(url)
        if root not in self._backends:
            self._backends[root] = Backend(root)
            logger.info("backend added: %s", root)

    def remove_backend(self, url: str) -> None:
        root = normalize_backend_url(url)
        if self._backends.pop(root, None) is None:
            raise KeyError(f"backend {url!r} is not in the pool {self.urls}; nothing removed")
        logger.info("backend removed: %s", root)

    def replace_backends(self, urls: Iterable[str]) -> None:
        roots = [normalize_backend_url(u) for u in urls]
        self._backends = {r: self._backends.get(r) or Backend(r) for r in roots}
        logger.info("backends replaced: %s", roots)

    # ------------------------------------------------------------------ picking
    def pick(self, exclude: set[str] = frozenset()) -> Backend | None:  # type: ignore[assignment]
        """The replica for the next try (None when every replica was tried)."""
        candidates = [b for b in self._backends.values() if b.url not in exclude]
        if not candidates:
            return None
        now = time.monotonic()
        healthy = [b for b in candidates if b.down_until <= now] or candidates
        self._turn += 1
        start = self._turn % len(healthy)
        ordered = healthy[start:] + healthy[:start]
        return min(ordered, key=lambda b: b.outstanding)

    def mark_failed(self, backend: Backend, cause: str) -> None:
        backend.failures += 1
        backend.last_error = cause
        backend.down_until = time.monotonic() + self.cooldown_s
        logger.warning("backend %s failed (%s); avoiding it for %.0f s", backend.url, cause, self.cooldown_s)

    @staticmethod
    def mark_ok(backend: Backend) -> None:
        backend.served += 1
        backend.down_until = 0.0

    # ------------------------------------------------------------------ sending
    async def send(self, client: httpx.AsyncClient, method: str, path: str, content: bytes | None = None,
                   headers: dict[str, str] | None = None) -> tuple[Backend, httpx.Response]:
        """Send with failover; returns (backend, response) with the response *head* read and the body streaming.

        The caller must `await response.aclose()` and `release(backend)` when done. Raises AllBackendsFailedError.
        """
        tried: set[str] = set()
        attempts: list[tuple[str, str]] = []
        for _ in range(self.num_retries + 1):
            backend = self.pick(tried) or (self.pick() if self._backends else None)
            if backend is None:
                break
            tried.add(backend.url)
            backend.outstanding += 1
            try:
                request = client.build_request(method, backend.url + path, content=content, headers=headers)
                response = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                backend.outstanding -= 1
                cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if not _retryable(exc):
                    attempts.append((backend.url, cause))
                    raise AllBackendsFailedError(attempts, self.urls) from exc
                self.mark_failed(backend, cause)
                attempts.append((backend.url, cause))
                continue
            except asyncio.CancelledError:
                backend.outstanding -= 1
                raise
            if response.status_code >= 500:
                body = (await response.aread())[:300].decode("utf-8", errors="replace")
                await response.aclose()
                backend.outstanding -= 1
                cause = f"HTTP {response.status_code}: {body}"
                self.mark_failed(backend, cause)
                attempts.append((backend.url, cause))
                continue
            return backend, response
        raise AllBackendsFailedError(attempts, self.urls)

    def release(self, backend: Backend, ok: bool = True) -> None:
        backend.outstanding = max(0, backend.outstanding - 1)
        if ok:
            self.mark_ok(backend)
