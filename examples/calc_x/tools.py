"""`CalculatorTool`: the agent's handle on the calculator MCP server, with a hard per-call timeout.

What it really is: an `mcp.Client` connected either to `python -m examples.calc_x.calc_mcp_server` over stdio (the
default, started once per `async with`) or to an in-process `MCPServer` (`CalculatorTool.in_process()`, for tests
and for runners that do not want a subprocess per worker).

    async with CalculatorTool() as tool:
        tool.openai_tools()                       # [{"type": "function", "function": {"name": "calculate", ...}}]
        await tool.call("calculate", '{"expression": "3 + 4"}')   # "7"
        await tool.calculate("1/0")               # "error: calculate('1/0'): division by zero ..."

`call` never raises for anything the model or the server did and never hangs: a bad tool name or bad arguments, a
refused expression, a server that does not answer within `timeout` seconds ("calculator unavailable: timed out after
10 s") or a server that died ("calculator unavailable: the tool server stopped ...") all come back as a string the
agent puts in the conversation. Only programming errors raise (calling it outside `async with`), and a server that
cannot start raises `CalculatorToolError` from `__aenter__` after at most `startup_timeout` seconds.

The connection lives in its own asyncio task (anyio requires a task group to be entered and left in one task), so
the `async with` and the calls may come from any tasks of one event loop.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import anyio
from mcp import Client, StdioServerParameters
from mcp.server.mcpserver import MCPServer

__all__ = ["DEFAULT_TIMEOUT", "REPO_ROOT", "CalculatorTool", "CalculatorToolError", "server_command"]

DEFAULT_TIMEOUT = 10.0
REPO_ROOT = Path(__file__).resolve().parents[2]
_MAX_RESULT_CHARS = 500


class CalculatorToolError(RuntimeError):
    """The tool server could not be started or listed its tools wrongly (raised from `__aenter__`)."""


def server_command() -> list[str]:
    """The argv of the real stdio server: this Python running `examples.calc_x.calc_mcp_server`."""
    return [sys.executable, "-m", "examples.calc_x.calc_mcp_server"]


def _seconds(value: float) -> str:
    return f"{value:g} s"


class CalculatorTool:
    """One connection to a calculator MCP server (see the module docstring).

    command: argv of a stdio server (default `server_command()`); ignored when `server` is given.
    server: an `MCPServer` to serve in-process instead of a subprocess.
    timeout: seconds one tool call may take before the agent gets "calculator unavailable: timed out ...".
    startup_timeout: seconds to start the server and list its tools.
    errlog: where the server's stderr goes (stdio only).
    """

    def __init__(self, command: Sequence[str] | None = None, *, server: MCPServer | None = None,
                 timeout: float = DEFAULT_TIMEOUT, startup_timeout: float = 30.0, cwd: str | Path | None = None,
                 env: dict[str, str] | None = None, errlog: TextIO | None = None):
        if timeout <= 0:
            raise ValueError(f"timeout={timeout} must be > 0 seconds (default {DEFAULT_TIMEOUT}); it bounds each call")
        if startup_timeout <= 0:
            raise ValueError(f"startup_timeout={startup_timeout} must be > 0 seconds (e.g. 30)")
        argv = list(command) if command is not None else server_command()
        if server is None and not argv:
            raise ValueError("command is empty; pass an argv like [sys.executable, '-m', 'examples.calc_x."
                             "calc_mcp_server'], or leave it out for that default")
        self.command = argv
        self.server = server
        self.timeout = float(timeout)
        self.startup_timeout = float(startup_timeout)
        self.cwd = Path(cwd) if cwd is not None else REPO_ROOT
        self.env = dict(env or {})
        self.errlog = errlog
        self._client: Client | None = None
        self._owner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._tools: list[dict[str, Any]] = []
        self._dead: str | None = None

    @classmethod
    def in_process(cls, server: MCPServer | None = None, **kwargs: Any) -> CalculatorTool:
        """A tool served in this process (no subprocess): `server` defaults to the real calculator server."""
        if server is None:
            from examples.calc_x.calc_mcp_server import build_server

            server = build_server()
        return cls(server=server, **kwargs)

    @property
    def mode(self) -> str:
        return "in-process" if self.server is not None else "stdio"

    # ------------------------------------------------------------------ lifecycle
    def _make_client(self) -> Client:
        if self.server is not None:
            return Client(self.server)
        python_path = str(REPO_ROOT)
        params = StdioServerParameters(command=self.command[0], args=self.command[1:], cwd=self.cwd,
                                       env={"PYTHONPATH": python_path, **self.env})
        from mcp.client.stdio import stdio_client

        return Client(stdio_client(params, errlog=self.errlog or sys.stderr))

    async def _own(self, client: Client, ready: asyncio.Future[Any], stop: asyncio.Event) -> None:
        """Owner task: enters and leaves the client (anyio needs both in one task) and lives until `stop`."""
        try:
            async with client:
                listed = await client.list_tools()
                if not ready.done():
                    ready.set_result(listed)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else CalculatorToolError("start-up cancelled"))
            if not isinstance(exc, Exception):
                raise
            self._dead = f"the tool server stopped ({type(exc).__name__}: {exc})"

    async def __aenter__(self) -> CalculatorTool:
        if self._owner is not None:
            raise RuntimeError("CalculatorTool is already started; use one `async with` per instance")
        client = self._make_client()
        what = "in-process server" if self.server is not None else f"server {' '.join(self.command)!r}"
        ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._owner = asyncio.create_task(self._own(client, ready, self._stop), name="calculator-tool")
        try:
            listed = await asyncio.wait_for(asyncio.shield(ready), self.startup_timeout)
        except BaseException as exc:
            await self._shutdown(cancel=True)
            if ready.done() and not ready.cancelled():
                ready.exception()  # retrieved: it is reported below
            exc = _leaf(exc)
            if isinstance(exc, TimeoutError):
                raise CalculatorToolError(
                    f"calculator {what} did not start and list its tools within {_seconds(self.startup_timeout)}. "
                    "Fix: run the command by hand to see why, or raise startup_timeout.") from None
            if isinstance(exc, Exception):
                raise CalculatorToolError(f"calculator {what} failed to start: {type(exc).__name__}: {exc}. "
                                          "Fix: run the command by hand to see its error.") from exc
            raise
        self._client = client
        self._dead = None
        self._tools = [
            {"type": "function",
             "function": {"name": tool.name, "description": tool.description or "", "parameters": tool.input_schema}}
            for tool in listed.tools
        ]
        return self

    async def _shutdown(self, cancel: bool = False) -> None:
        owner, self._owner = self._owner, None
        self._client = None
        if owner is None:
            return
        self._stop.set()
        if cancel:
            owner.cancel()
        done, _ = await asyncio.wait({owner}, timeout=10.0)  # the stdio transport needs up to ~6 s to kill a server
        if not done:  # a wedged transport must not hang shutdown
            owner.cancel()
            await asyncio.wait({owner}, timeout=5.0)
        if owner.done() and not owner.cancelled():
            owner.exception()  # mark retrieved; start-up errors were already reported through `ready`

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._shutdown()

    # ------------------------------------------------------------------ schema
    def openai_tools(self) -> list[dict[str, Any]]:
        """The server's tools as the OpenAI chat `tools` parameter (copies; safe to modify)."""
        self._require_started()
        return json.loads(json.dumps(self._tools))

    @property
    def tool_names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self._tools]

    def _require_started(self) -> Client:
        if self._client is None:
            raise RuntimeError("CalculatorTool is not started. Fix: `async with CalculatorTool() as tool: ...`")
        return self._client

    # ------------------------------------------------------------------ calls
    async def calculate(self, expression: str) -> str:
        """Shortcut for `call("calculate", {"expression": expression})`."""
        return await self.call("calculate", {"expression": expression})

    async def call(self, name: str, arguments: dict[str, Any] | str | None) -> str:
        """Run tool `name` with `arguments` (a dict, or the JSON string an OpenAI tool call carries); always a string."""
        client = self._require_started()
        if name not in self.tool_names:
            return f"error: unknown tool {name!r}; available: {', '.join(self.tool_names) or 'none'}"
        args = _parse_arguments(arguments)
        if isinstance(args, str):
            return args
        if self._dead is not None:
            return f"calculator unavailable: {self._dead}"
        try:
            with anyio.fail_after(self.timeout):
                result = await client.call_tool(name, args)
        except TimeoutError:
            return f"calculator unavailable: timed out after {_seconds(self.timeout)}"
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError) as exc:
            self._dead = f"the tool server stopped ({type(exc).__name__})"
            return f"calculator unavailable: {self._dead}"
        except Exception as exc:  # MCPError (e.g. connection closed), validation errors, ...
            exc = _leaf(exc)  # type: ignore[assignment]
            text = str(exc) or type(exc).__name__
            if "closed" in text.lower():
                self._dead = f"the tool server stopped ({text})"
                return f"calculator unavailable: {self._dead}"
            return f"calculator unavailable: {type(exc).__name__}: {text}"[:_MAX_RESULT_CHARS]
        text = "\n".join(getattr(block, "text", "") for block in result.content).strip()
        if result.is_error:
            return f"error: {text or 'the tool failed without a message'}"[:_MAX_RESULT_CHARS]
        return text[:_MAX_RESULT_CHARS]


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, which anyio task groups wrap errors in."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _parse_arguments(arguments: dict[str, Any] | str | None) -> dict[str, Any] | str:
    """The arguments as a dict, or an error string the agent sees (the calculator takes exactly one string)."""
    usage = 'tool arguments must be a JSON object like {"expression": "3 + 4"}'
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            return f"error: {usage}; got {arguments[:80]!r} (not JSON)"
    if not isinstance(arguments, dict):
        return f"error: {usage}; got {type(arguments).__name__}"
    expression = arguments.get("expression")
    if not isinstance(expression, str | int | float) or isinstance(expression, bool):
        return f"error: {usage}; got keys {sorted(arguments)}"
    return {"expression": str(expression)}
