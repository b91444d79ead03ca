"""Test doubles for the serving tests: `FakeUpstream` (a scripted OpenAI/vLLM-like server) and `TcpForwarder`.

FakeUpstream answers `/v1/chat/completions` and `/v1/completions` like vLLM >= 0.10.2 with `return_token_ids`
(top-level `prompt_token_ids` + `choices[i].token_ids` for chat; both in the choice for completions; SSE streaming
with `prompt_token_ids` on the first chunk and `token_ids` on every chunk). Its behaviour is scripted per instance:
`fail_with` (status code to answer), `delay_s`, `tool_call` (answer with a tool call), `raw_reply` (answer HTTP 200
with exactly these bytes, as `raw_content_type`, for chat, completions and streamed calls alike: a broken or foreign
upstream). It counts requests and keeps the bodies it received.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

__all__ = ["SERVED_NAME", "FakeUpstream", "TcpForwarder"]

PROMPT_IDS = [1, 2, 3]
WORDS = ["Hello", " from", " fake"]
WORD_IDS = [101, 102, 103]
EOS = 2
SERVED_NAME = "smol"  # the name the session vLLM server (conftest.vllm_server) is served under


class FakeUpstream:
    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.fail_with: int | None = None
        self.delay_s = 0.0
        self.tool_call = False
        self.raw_reply: bytes | None = None
        self.raw_content_type = "application/json"
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[Any] | None = None
        self.app = self._build()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _build(self) -> FastAPI:
        app = FastAPI()

        async def answer(request: Request, chat: bool) -> Any:
            body = await request.json()
            self.requests.append(body)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                if self.fail_with:
                    return JSONResponse({"error": {"message": f"{self.name} scripted failure"}},
                                        status_code=self.fail_with)
                if self.raw_reply is not None:
                    return Response(self.raw_reply, media_type=self.raw_content_type)
                if body.get("stream"):
                    return StreamingResponse(self._stream(body, chat), media_type="text/event-stream")
                return JSONResponse(self._whole(body, chat))
            finally:
                self.in_flight -= 1

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Any:
            return await answer(request, True)

        @app.post("/v1/completions")
        async def completions(request: Request) -> Any:
            return await answer(request, False)

        @app.get("/v1/models")
        async def models() -> Any:
            return {"object": "list", "data": [{"id": self.name, "object": "model"}]}

        return app

    def _whole(self, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        ids = body.get("return_token_ids")
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": "".join(WORDS)}
            finish = "stop"
            if self.tool_call:
                message = {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
                finish = "tool_calls"
            choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
            if body.get("logprobs"):
                choice["logprobs"] = {"content": [{"token": w, "logprob": -0.5} for w in WORDS] + [
                    {"token": "</s>", "logprob": -0.1}]}
            if ids:
                choice["token_ids"] = WORD_IDS + [EOS]
            data: dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion", "model": body.get("model"),
                                    "choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}
            if ids:
                data["prompt_token_ids"] = PROMPT_IDS
            return data
        choice = {"index": 0, "text": "".join(WORDS), "finish_reason": "stop"}
        if body.get("logprobs"):
            choice["logprobs"] = {"token_logprobs": [-0.5, -0.5, -0.5, -0.1], "tokens": WORDS + [""]}
        if ids:
            choice.update(token_ids=WORD_IDS + [EOS], prompt_token_ids=PROMPT_IDS)
        return {"id": "cmpl-fake", "object": "text_completion", "model": body.get("model"), "choices": [choice],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4}}

    async def _stream(self, body: dict[str, Any], chat: bool) -> Any:
        ids = body.get("return_token_ids")
        first: dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": body.get("model"),
                                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
        if ids:
            first["prompt_token_ids"] = PROMPT_IDS
        if chat:
            yield f"data: {json.dumps(first)}\n\n"
        pieces = list(zip(WORDS, WORD_IDS, strict=True)) + [("", EOS)]
        for i, (word, tid) in enumerate(pieces):
            last = i == len(pieces) - 1
            if chat:
                choice: dict[str, Any] = {"index": 0, "delta": {"content": word} if word else {},
                                          "finish_reason": "stop" if last else None}
            else:
                choice = {"index": 0, "text": word, "finish_reason": "stop" if last else None}
                if ids and i == 0:
                    choice["prompt_token_ids"] = PROMPT_IDS
            if ids:
                choice["token_ids"] = [tid]
            yield f"data: {json.dumps({'id': 'x', 'model': body.get('model'), 'choices': [choice]})}\n\n"
            await asyncio.sleep(0)
        yield f"data: {json.dumps({'id': 'x', 'choices': [], 'usage': {'prompt_tokens': 3, 'completion_tokens': 4}})}\n\n"
        yield "data: [DONE]\n\n"

    async def start(self) -> FakeUpstream:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)
        self._server = self._task = None


class TcpForwarder:
    """Forwards a local port to `target_port`; `kill()` closes the listener and drops every open connection."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> TcpForwarder:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update({writer, up_writer})

    async def kill(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                w.transport.abort()
        self._writers.clear()
