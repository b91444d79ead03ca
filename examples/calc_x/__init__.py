"""calc_x: train a small model to solve arithmetic word problems with a calculator tool (Calc-X style data).

Parts that need no training: `calculator` (safe exact evaluator), `calc_mcp_server` (the calculator as an MCP stdio
tool), `tools` (`CalculatorTool`, the client an agent uses), `reward` (answer extraction and scoring), `data`
(Calc-X loader and the bundled synthetic sample) and `calc_agent` (the tool-calling agent loop).
"""
