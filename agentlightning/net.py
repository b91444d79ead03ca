"""Serving helpers shared by the store server and the LLM proxy: the addresses they publish, and the uvicorn server
they embed.

Where this sits: beside the store server and the LLM proxy. Both bind to 127.0.0.1 unless told otherwise; bound to
`0.0.0.0` / `::` (so runners on other nodes of a Ray cluster reach them), the URLs they hand out — the store URL
given to runners, the `ProxyLLM` endpoint given to agents — must name this machine, not the wildcard.

`EmbeddedServer` is uvicorn's server without its Ctrl-C handling: uvicorn on the main thread takes SIGINT/SIGTERM and
shuts itself down first, so on Ctrl-C the trainer's store and proxy were gone before the runners could give their
rollouts back. Embedded, the signal reaches the application (KeyboardInterrupt), which stops runners, then servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Iterator

import uvicorn

__all__ = ["EmbeddedServer", "advertised_host", "http_url", "is_loopback", "until_stopped"]

_WILDCARDS = {"0.0.0.0", "::", ""}


def is_loopback(host: str) -> bool:
    """True for 127.x.x.x, ::1 and localhost."""
    return host in ("localhost", "::1") or host.startswith("127.")


def advertised_host(host: str) -> str:
    """`host` itself, unless it is a wildcard: then this machine's outward IP (the source address of a route to a
    public address; no packet is sent), falling back to the hostname's address."""
    if host not in _WILDCARDS:
        return host
    family = socket.AF_INET6 if host == "::" else socket.AF_INET
    probe = "2001:4860:4860::8888" if family == socket.AF_INET6 else "8.8.8.8"
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((probe, 80))
            return str(sock.getsockname()[0])
    except OSError:
        return socket.gethostbyname(socket.gethostname())


def http_url(host: str, port: int | None) -> str:
    """`http://host:port` as others reach it: the advertised host (see `advertised_host`), IPv6 in brackets."""
    host = advertised_host(host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM to the application that embeds it (see the module docstring)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def until_stopped(serving: Awaitable[None]) -> None:
    """Wait for `serving` to end, or for SIGINT/SIGTERM (a standalone server's own shutdown: `agl store`, `agl proxy`;
    the caller then stops it gracefully)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiters = {asyncio.ensure_future(serving), asyncio.ensure_future(stop.wait())}
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
