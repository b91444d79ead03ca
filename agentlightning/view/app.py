"""The web app of `agl view`: three pages over a `RunSource`, served by uvicorn on 127.0.0.1 by default.

Where this sits: beside the training loop, read-only: records + metrics + store → `RunSource` → **routes** → pages.

Routes: `/` (the run), `/step/{n}` (its rollouts; `?status=`, `?min_reward=`, `?sort=`, `?order=`, `?page=`),
`/rollout/{id}` (spans, chat, training samples), `/health`. With a token every route but `/health` needs it: as
`Authorization: Bearer TOKEN`, or once as `?token=TOKEN` (then a cookie carries it, so links work in a browser).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from agentlightning.view import pages
from agentlightning.view.source import RunSource

__all__ = ["build_app", "serve"]

logger = logging.getLogger(__name__)
_COOKIE = "agl_view_token"


def build_app(source: RunSource, token: str | None = None) -> Starlette:
    """The Starlette app; page render times are logged at DEBUG (`agl -v view ...`)."""
    title = f"Run {source.target}"

    def allowed(request: Request) -> bool:
        if token is None:
            return True
        given = request.query_params.get("token") or request.cookies.get(_COOKIE) or ""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:]
        return hmac.compare_digest(given.encode(), token.encode())

    def guarded(render: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            if not allowed(request):
                return PlainTextResponse("agl view: this page needs the token. Fix: open it with ?token=TOKEN (the "
                                         "--token given to agl view)", status_code=401)
            started = time.perf_counter()
            try:
                body = await render(request)
            except KeyError as exc:
                return PlainTextResponse(f"not found: {exc}", status_code=404)
            response = HTMLResponse(body)
            if token is not None and request.query_params.get("token"):
                response.set_cookie(_COOKIE, token, httponly=True, samesite="strict")
            logger.debug("%s rendered in %.1f ms", request.url.path, (time.perf_counter() - started) * 1000)
            return response

        return endpoint

    async def run_page(request: Request) -> str:
        steps = await source.steps()
        return pages.run_page(title, await asyncio.to_thread(source.metrics), steps, await source.counts())

    async def step_page(request: Request) -> str:
        return pages.step_page(await source.step(int(request.path_params["step"])), dict(request.query_params))

    async def rollout_page(request: Request) -> str:
        data = await source.rollout(request.path_params["rollout_id"])
        return await asyncio.to_thread(pages.rollout_page, data, source.tokens)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/", guarded(run_page)), Route("/step/{step:int}", guarded(step_page)),
                             Route("/rollout/{rollout_id}", guarded(rollout_page)), Route("/health", health)])


async def serve(source: RunSource, host: str = "127.0.0.1", port: int = 4748, token: str | None = None,
                started: asyncio.Event | None = None) -> None:
    """Serve until cancelled (or Ctrl-C); sets `started` once listening."""
    import uvicorn

    from agentlightning.net import EmbeddedServer, until_stopped

    server = EmbeddedServer(uvicorn.Config(build_app(source, token), host=host, port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if started is not None:
        started.set()
    try:
        await until_stopped(asyncio.shield(task))  # Ctrl-C / SIGTERM: then a graceful stop below
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
