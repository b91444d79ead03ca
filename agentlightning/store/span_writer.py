"""`SpanWriter`: group commit of span writes — many producers, one `add_spans` request in flight at a time.

Where this sits: proxy (`llm.call` spans) and tracer (spans around the agent) → **SpanWriter** → store. Over HTTP a
span write costs one round trip; with 16 episodes per runner and many runners, one request per span is what limits
the store. The writer queues what its producers hand it and sends everything queued as one `add_spans` batch while
no other batch is in flight, so batches grow exactly when the store is busy and a lone span goes out at once (the
delay a span waits is at most one batch in flight; `max_batch` bounds the size).

Order: batches go out one at a time, in submission order, and the store numbers each attempt's spans in batch order,
so spans of one attempt get `sequence_id`s in the order they were submitted, whichever producers they came from.

Failure: a batch is all or nothing in the store (`store/base.py`). When a mixed batch is refused, each submission in
it is retried alone, so one attempt's bad span (an unknown attempt, say) fails only its own submission. Transport
retries happen inside the store client (one idempotency key per batch, so a retried batch is stored once).

Use (on one event loop): `stored = await writer.write([span])` waits until the spans are stored (the proxy answers a
model call only after its span is stored, so that everything the agent does afterwards is ordered after it);
`future = writer.submit(spans)` hands them over without waiting. `SpanWriter.of(store)` is the shared writer of a
store on the running loop.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Sequence

from agentlightning.store.base import LightningStore
from agentlightning.types import Span

__all__ = ["DEFAULT_MAX_BATCH", "SpanWriter"]

DEFAULT_MAX_BATCH = 256  # spans per request; a batch of 256 llm.call spans of ~400 token ids is ~1 MB of JSON

_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, SpanWriter]] = weakref.WeakKeyDictionary()


class SpanWriter:
    """Group-commit writer of spans to `store`, bound to the event loop it is first used on (see module docstring)."""

    def __init__(self, store: LightningStore, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError(f"SpanWriter(max_batch={max_batch}) must be >= 1 (spans per add_spans request)")
        self.store = store
        self.max_batch = max_batch
        self._queue: deque[tuple[list[Span], asyncio.Future[list[Span]]]] = deque()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, store: LightningStore) -> SpanWriter:
        """The shared writer of `store` on the running event loop (created on first use)."""
        writers = _SHARED.setdefault(asyncio.get_running_loop(), {})
        writer = writers.get(id(store))
        if writer is None or writer.store is not store:
            writer = writers[id(store)] = cls(store)
        return writer

    def submit(self, spans: Sequence[Span]) -> asyncio.Future[list[Span]]:
        """Queue `spans` (kept together, in order) for the next batch; the future resolves to them as stored, or to
        the store's error. Call on the writer's event loop."""
        future: asyncio.Future[list[Span]] = asyncio.get_running_loop().create_future()
        if not spans:
            future.set_result([])
            return future
        self._queue.append((list(spans), future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="agl-span-writer")
        return future

    async def write(self, spans: Sequence[Span]) -> list[Span]:
        """Store `spans` with the next batch and return them as stored (raises what the store raised)."""
        return await self.submit(spans)

    async def _run(self) -> None:
        entries: list[tuple[list[Span], asyncio.Future[list[Span]]]] = []
        try:
            while self._queue:
                entries, size = [], 0
                while self._queue and (not entries or size + len(self._queue[0][0]) <= self.max_batch):
                    entry = self._queue.popleft()
                    entries.append(entry)
                    size += len(entry[0])
                await self._send(entries)
        finally:  # cancelled (its loop is shutting down): nobody may wait forever for a write that will not happen
            for _, future in [*entries, *self._queue]:
                if not future.done():
                    future.cancel()
            self._queue.clear()

    async def _send(self, entries: list[tuple[list[Span], asyncio.Future[list[Span]]]]) -> None:
        batch = [span for spans, _ in entries for span in spans]
        try:
            stored = await self.store.add_spans(batch)
        except Exception as exc:  # noqa: BLE001 - handed to the submitters
            if len(entries) == 1:
                _settle(entries[0][1], exc=exc)
                return
            for spans, future in entries:  # isolate the submission that was refused
                try:
                    one = await self.store.add_spans(spans)
                except Exception as exc_one:  # noqa: BLE001 - handed to its submitter
                    _settle(future, exc=exc_one)
                else:
                    _settle(future, result=one)
            return
        at = 0
        for spans, future in entries:
            _settle(future, result=stored[at: at + len(spans)])
            at += len(spans)


def _settle(future: asyncio.Future[list[Span]], result: list[Span] | None = None,
            exc: BaseException | None = None) -> None:
    if future.done():  # the submitter stopped waiting (cancelled)
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result or [])
