"""The calculator as an MCP tool server: one tool, `calculate(expression: str) -> str`, over stdio.

What it really is: an `mcp` 2.3 `MCPServer` (the former FastMCP) wrapping `examples.calc_x.calculator.calculate`.
A refused or failing expression is *not* a protocol error: the tool returns the text `"error: <message>"` as its
normal result, so the agent reads why and can try again (e.g. `"error: calculate('1/0'): division by zero ..."`).

Run it (it speaks MCP JSON-RPC on stdin/stdout, so a terminal shows nothing until a client connects):

    python -m examples.calc_x.calc_mcp_server

Agents use it through `examples.calc_x.tools.CalculatorTool`, which starts this module as a subprocess (or, in tests,
serves `build_server()` in-process).
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from examples.calc_x.calculator import MAX_CHARS, CalculatorError, calculate

__all__ = ["SERVER_NAME", "TOOL_DESCRIPTION", "TOOL_NAME", "build_server", "calculate_tool", "main"]

SERVER_NAME = "calc_x-calculator"
TOOL_NAME = "calculate"
TOOL_DESCRIPTION = (
    "Evaluate an arithmetic expression exactly. Allowed: numbers, + - * / % ^ (power) and parentheses, "
    f"at most {MAX_CHARS} characters. Example: calculate(expression='(3 + 4) * 2') returns '14'. "
    "Fractions come back as '2/3 ≈ 0.6666666667'."
)


def calculate_tool(expression: str) -> str:
    """The tool body: the formatted result, or `"error: ..."` (never raises for a bad expression)."""
    try:
        return calculate(expression)
    except CalculatorError as exc:
        return f"error: {exc}"


def build_server() -> MCPServer:
    """A fresh server exposing the `calculate` tool (one per in-process client keeps tests independent)."""
    server = MCPServer(SERVER_NAME, instructions="Use `calculate` for every arithmetic step.")
    server.add_tool(calculate_tool, name=TOOL_NAME, description=TOOL_DESCRIPTION)
    return server


def main() -> None:
    build_server().run("stdio")


if __name__ == "__main__":
    main()
