"""The calculator MCP server over real stdio and in-process, and `CalculatorTool` never hanging on a bad server."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from examples.calc_x.calc_mcp_server import build_server
from examples.calc_x.tools import REPO_ROOT, CalculatorTool, CalculatorToolError

# A FAKE calculator server: answers the MCP handshake and tools/list, then never answers `calculate` (or dies on
# the expression "die"), to check that the client gives the agent an error string instead of hanging.
FAKE_HUNG_SERVER = textwrap.dedent("""
    import os, time
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("fake-hung-calculator")

    def calculate(expression: str) -> str:
        if expression == "die":
            os._exit(3)
        time.sleep(3600)
        return "never"

    server.add_tool(calculate, name="calculate")
    server.run("stdio")
""")


@pytest.fixture
def fake_hung_server(tmp_path: Path) -> list[str]:
    path = tmp_path / "fake_hung_calculator_server.py"
    path.write_text(FAKE_HUNG_SERVER)
    return [sys.executable, str(path)]


async def test_stdio_server_lists_and_calls() -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "examples.calc_x.calc_mcp_server"],
                                   cwd=str(REPO_ROOT), env={"PYTHONPATH": str(REPO_ROOT)})
    async with Client(params) as client:
        tools = (await client.list_tools()).tools
        assert [t.name for t in tools] == ["calculate"]
        assert tools[0].input_schema["required"] == ["expression"]
        ok = await client.call_tool("calculate", {"expression": "(3 + 4) * 2"})
        assert (ok.is_error, ok.content[0].text) == (False, "14")
        bad = await client.call_tool("calculate", {"expression": "__import__('os')"})
        assert bad.is_error is False  # a refused expression is a normal result the agent reads
        assert bad.content[0].text.startswith("error: calculate(")
        assert "found a name '__import__'" in bad.content[0].text


async def test_calculator_tool_stdio() -> None:
    async with CalculatorTool() as tool:
        assert tool.mode == "stdio"
        schema = tool.openai_tools()
        assert schema[0]["type"] == "function"
        assert schema[0]["function"]["name"] == "calculate"
        assert schema[0]["function"]["parameters"]["properties"]["expression"]["type"] == "string"
        assert await tool.call("calculate", '{"expression": "1/3+1/3+1/3"}') == "1"
        assert (await tool.calculate("1/0")).startswith("error: calculate('1/0'): division by zero")
        assert "not JSON" in await tool.call("calculate", "3+4")
        assert "got keys ['expr']" in await tool.call("calculate", {"expr": "3"})
        assert "unknown tool 'search'" in await tool.call("search", {"expression": "3"})


async def test_calculator_tool_in_process() -> None:
    async with CalculatorTool.in_process() as tool:
        assert tool.mode == "in-process"
        assert await tool.calculate("2^10") == "1024"
        assert await tool.calculate("9**9**9") == ("error: calculate('9**9**9'): exponent 387420489 is too large "
                                                   "(|exponent| must be <= 64)")


async def test_not_started_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        await CalculatorTool.in_process(build_server()).calculate("1")


async def test_hung_server_gives_error_string_within_timeout(fake_hung_server: list[str]) -> None:
    async with CalculatorTool(fake_hung_server, timeout=1.0) as tool:
        started = time.monotonic()
        assert await tool.calculate("1 + 1") == "calculator unavailable: timed out after 1 s"
        assert time.monotonic() - started < 3.0
        assert (await tool.calculate("die")).startswith("calculator unavailable:")
        started = time.monotonic()
        assert (await tool.calculate("1")).startswith("calculator unavailable: the tool server stopped")
        assert time.monotonic() - started < 0.5  # a dead server is not waited on again


async def test_server_that_never_starts_raises_clear_error() -> None:
    started = time.monotonic()
    with pytest.raises(CalculatorToolError, match="did not start and list its tools within 1 s"):
        async with CalculatorTool([sys.executable, "-c", "import time; time.sleep(60)"], startup_timeout=1.0):
            pass
    assert time.monotonic() - started < 10.0
    with pytest.raises(CalculatorToolError, match="failed to start"):
        async with CalculatorTool(["/nonexistent/calculator-server"]):
            pass
