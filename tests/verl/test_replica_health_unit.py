"""`RayPPOPolicy.check_replicas` against real HTTP endpoints, without verl: a replica that answers `/health` passes;
one that refuses connections or answers 500 (vLLM's answer once its engine died) raises `ReplicaDeadError` naming
it, at once, with the fix."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from agentlightning.serving import find_free_port
from agentlightning.verl.ray_policy import RayPPOPolicy, ReplicaDeadError


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def replicas() -> Iterator[dict[str, str]]:
    class Dead(_Health):
        status = 500

    servers = {name: ThreadingHTTPServer(("127.0.0.1", 0), handler) for name, handler in
               (("alive", _Health), ("engine_dead", Dead))}
    for server in servers.values():
        threading.Thread(target=server.serve_forever, daemon=True).start()
    urls = {name: f"http://127.0.0.1:{server.server_address[1]}/v1" for name, server in servers.items()}
    urls["gone"] = f"http://127.0.0.1:{find_free_port()}/v1"
    yield urls
    for server in servers.values():
        server.shutdown()


def _policy(*urls: str) -> SimpleNamespace:
    return SimpleNamespace(base_urls=lambda: list(urls))


def test_live_replicas_pass(replicas: dict[str, str]) -> None:
    RayPPOPolicy.check_replicas(_policy(replicas["alive"]), 3)  # type: ignore[arg-type]


def test_a_dead_replica_is_named_with_the_fix(replicas: dict[str, str]) -> None:
    with pytest.raises(ReplicaDeadError) as raised:
        RayPPOPolicy.check_replicas(_policy(replicas["alive"], replicas["engine_dead"], replicas["gone"]), 7,  # type: ignore[arg-type]
                                    timeout_s=2.0)
    message = str(raised.value)
    assert "at step 7" in message and replicas["alive"].removesuffix("/v1") not in message
    assert replicas["engine_dead"].removesuffix("/v1") + "/health (HTTPStatusError" in message
    assert replicas["gone"].removesuffix("/v1") + "/health (ConnectError" in message
    assert "Fix: run the same command again" in message
