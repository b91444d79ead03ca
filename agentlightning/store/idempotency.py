"""Idempotency keys: a mutating store call repeated with the same key answers its first answer and changes nothing.

Where this sits: inside every store backend, under its lock or transaction. The HTTP client makes one key per logical
call (`new_key()`) and sends it with every retry of that call (`Idempotency-Key` header); the server passes it to the
backend, which looks the key up *in the same atomic step* as the change: a hit returns the recorded answer, a miss
applies the change and records its answer. So a write whose answer was lost on the network can be sent again safely:
it is applied exactly once (`tests/store/test_idempotency.py`).

Bounds: keys live `DEFAULT_TTL_SECONDS` (one hour, far beyond any client's retry deadline) and at most
`DEFAULT_MAX_KEYS` of them are kept in memory (oldest dropped first). The SQLite store keeps them in its file
(table `idempotency`), so a repeat that reaches a restarted store server is still answered from the first answer.

A key belongs to one method: reusing it for another method is a client bug and raises `StoreRequestError`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Final

from pydantic import TypeAdapter

from agentlightning.store.base import StoreRequestError
from agentlightning.store.transitions import time_ordered_hex
from agentlightning.types import Attempt, AttemptedRollout, ResourcesUpdate, Rollout, Span

__all__ = ["ANSWERS", "DEFAULT_MAX_KEYS", "DEFAULT_TTL_SECONDS", "KEY_HEADER", "KeyCache", "MISS", "new_key",
           "wrong_method"]

KEY_HEADER: Final = "Idempotency-Key"
DEFAULT_TTL_SECONDS: Final = 3600.0
DEFAULT_MAX_KEYS: Final = 200_000
MISS: Final = object()
"""`KeyCache.get`'s answer for an unknown (or expired) key."""

# The answer type of each keyed method (the SQLite store keeps answers as JSON and validates them back with these).
ANSWERS: Final[dict[str, TypeAdapter[Any]]] = {
    "enqueue_many_rollouts": TypeAdapter(list[Rollout]),
    "dequeue_rollout": TypeAdapter(AttemptedRollout),
    "update_attempt": TypeAdapter(Attempt),
    "update_rollout": TypeAdapter(Rollout),
    "add_spans": TypeAdapter(list[Span]),
    "update_resources": TypeAdapter(ResourcesUpdate),
}


def new_key() -> str:
    """A fresh key for one logical call (sent unchanged with each of its retries): time-ordered, so the SQLite store's
    key table takes new keys at the right edge of its index, then 80 random bits."""
    return time_ordered_hex(80)


def wrong_method(key: str, recorded: str, method: str) -> StoreRequestError:
    return StoreRequestError(f"idempotency key {key!r} was first used for {recorded} and now for {method}; a key "
                             "names one logical call. Fix: make a new key per call (idempotency.new_key())")


class KeyCache:
    """The in-memory key → (method, answer) record, bounded by count and age. Not thread-safe: call it under the
    store's lock."""

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        self.max_keys, self.ttl_seconds = max_keys, ttl_seconds
        self._entries: OrderedDict[str, tuple[str, Any, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str | None, method: str) -> Any:
        """The recorded answer of `key`, or `MISS`. Raises StoreRequestError if the key belongs to another method."""
        if key is None:
            return MISS
        entry = self._entries.get(key)
        if entry is None:
            return MISS
        recorded, answer, created = entry
        if time.time() - created > self.ttl_seconds:
            return MISS
        if recorded != method:
            raise wrong_method(key, recorded, method)
        return answer

    def put(self, key: str | None, method: str, answer: Any) -> None:
        if key is None:
            return
        now = time.time()
        self._entries[key] = (method, answer, now)
        self._entries.move_to_end(key)
        while self._entries:
            oldest_key, (_, _, created) = next(iter(self._entries.items()))
            if len(self._entries) <= self.max_keys and now - created <= self.ttl_seconds:
                break
            del self._entries[oldest_key]
