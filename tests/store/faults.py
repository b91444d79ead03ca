"""`FaultyProxy`: a TCP proxy for tests that sits between HTTP/1.1 clients and a server and breaks some requests.

It reads each request off the client's connection (headers + Content-Length body) and, for a seeded random share of
them, does one of three things instead of a clean relay:

- `reset_before`: resets the client's connection before the request reaches the server (nothing applied);
- `reset_after`: relays the request, reads the server's whole answer, then resets the client's connection without
  sending it (applied, answer lost);
- `cut_answer`: relays the request and sends only the first half of the answer before the reset.

Resets are real TCP RSTs (SO_LINGER 0). Counts of requests, each fault, and requests whose `Idempotency-Key` was
seen before (retried writes) are kept in `counts`. With `spare_retries=True` a request whose key was seen before is
always relayed (so `rate=1.0` faults each logical write exactly once). Runs on its own thread and event loop, so it keeps relaying while
the test's own loop is blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections import Counter

__all__ = ["FAULTS", "FaultyProxy"]

FAULTS = ("reset_before", "reset_after", "cut_answer")


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(head, body) of one HTTP/1.1 message with a Content-Length body (httpx and uvicorn both send one here)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"transfer-encoding":
            raise ValueError("FaultyProxy relays Content-Length messages only")
    return head, await reader.readexactly(length) if length else b""


def _header(head: bytes, wanted: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == wanted:
            return value.strip()
    return None


class FaultyProxy:
    """Relay 127.0.0.1:<port> → upstream, faulting `rate` of the requests (kinds drawn uniformly from `kinds`)."""

    def __init__(self, upstream_port: int, rate: float = 0.25, seed: int = 0,
                 kinds: tuple[str, ...] = FAULTS, upstream_host: str = "127.0.0.1", spare_retries: bool = False,
                 latency_s: float = 0.0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.rate, self.kinds, self.spare_retries = rate, kinds, spare_retries
        self.latency_s = latency_s  # added to every request (a store on another machine, a slow network)
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.port = 0
        self._keys: set[bytes] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self.enabled = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _fate(self, head: bytes) -> str:
        self.counts["requests"] += 1
        key = _header(head, b"idempotency-key")
        repeat = key is not None and key in self._keys
        if key is not None:
            self.counts["retried_writes"] += repeat
            self._keys.add(key)
        if not self.enabled or (repeat and self.spare_retries) or self.rng.random() >= self.rate:
            return "relay"
        fate = self.rng.choice(self.kinds)
        self.counts[fate] += 1
        self.counts["faulted"] += 1
        return fate

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader: asyncio.StreamReader | None = None
        up_writer: asyncio.StreamWriter | None = None
        try:
            while True:
                try:
                    head, body = await _read_message(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the client closed its (idle) connection
                fate = self._fate(head)
                if self.latency_s:
                    await asyncio.sleep(self.latency_s)
                if fate == "reset_before":
                    _reset(writer)
                    return
                if up_writer is None:
                    up_reader, up_writer = await asyncio.open_connection(*self.upstream)
                assert up_reader is not None
                up_writer.write(head + body)
                await up_writer.drain()
                answer_head, answer_body = await _read_message(up_reader)
                answer = answer_head + answer_body
                if fate == "reset_after":
                    _reset(writer)
                    return
                if fate == "cut_answer":
                    writer.write(answer[: len(answer) // 2])
                    await writer.drain()
                    _reset(writer)
                    return
                writer.write(answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            _reset(writer)
        finally:
            if up_writer is not None:
                up_writer.close()
            if not writer.is_closing():
                writer.close()

    def start(self) -> FaultyProxy:
        ready = threading.Event()

        async def serve() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="faulty-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("FaultyProxy did not start")
        return self

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        if self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._thread = None
