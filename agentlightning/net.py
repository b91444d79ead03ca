"""Addresses other machines can use: what a server bound to a wildcard address publishes in its URLs.

Where this sits: beside the store server and the LLM proxy. Both bind to 127.0.0.1 unless told otherwise; bound to
`0.0.0.0` / `::` (so runners on other nodes of a Ray cluster reach them), the URLs they hand out — the store URL
given to runners, the `ProxyLLM` endpoint given to agents — must name this machine, not the wildcard.
"""

from __future__ import annotations

import socket

__all__ = ["advertised_host", "http_url", "is_loopback"]

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
