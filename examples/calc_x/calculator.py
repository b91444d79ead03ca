"""A safe, exact calculator for expressions written by a model: `calculate("3 + 4*2")` → `"11"`.

What it really is: an `ast` walker over `fractions.Fraction`. The text is parsed with `ast.parse(mode="eval")` and
only these nodes are evaluated: numbers, unary `+`/`-`, binary `+ - * / %` and power (`^` or `**`), and parentheses.
Anything else (names, calls, attributes, lambdas, comprehensions, strings, subscripts, ...) is refused with a
`CalculatorError` whose message the agent sees. Nothing is ever handed to `eval`, `exec` or `sympify`.

Arithmetic is exact: `1/3 + 1/3 + 1/3` is exactly 1. Floats in the text are read through their decimal spelling
(`0.1` is 1/10, not the binary float).

Bounds, all checked *before* the work they guard (so `9**9**9` and `10**10**10` are refused at once):
- the text is at most `MAX_CHARS` (200) characters and parentheses nest at most `MAX_PAREN_DEPTH` (20) deep;
- the syntax tree is at most `MAX_TREE_DEPTH` (120) nodes deep;
- exponents are whole numbers with |e| <= `MAX_EXPONENT` (64), and a power whose result would have more than
  `MAX_DIGITS` digits is refused from the operands' sizes;
- every number (literal, intermediate or final) must have numerator and denominator below 10**`MAX_DIGITS` (10**30);
- division or modulo by zero is an error.

Accepted spellings besides plain Python arithmetic: `^` means power, `×`/`·` mean `*`, `÷` means `/`, `−` means `-`,
thousands separators between digit groups (`1,000`) are dropped, and a trailing `=` is ignored.

Result format (`format_result`), chosen so a small model can copy the answer, exact at every size:
- whole numbers: `"12"`, `"-3"`;
- fractions with a short exact decimal (at most `MAX_DECIMAL_PLACES`, 10, decimal places): the decimal, every digit
  exact, `"2.5"`, `"0.125"`, `"50000000000000000000000000000.5"` for `(10^29 + 1) / 2`;
- other fractions: the exact fraction, then `≈` and a rounded decimal with `APPROX_DIGITS` (10) significant digits,
  or more when the whole part is longer, so that every whole digit shown is right and only the last digit is rounded:
  `"2/3 ≈ 0.6666666667"`, `"100000000000000000000000000000/3 ≈ 33333333333333333333333333333.3"`.
The reward (`reward.py`) reads both parts: the fraction exactly, the decimal within its relative 1e-4, so either
copied answer scores.

Run it: `python -m examples.calc_x.calculator "2^10 / 3"`.
"""

from __future__ import annotations

import ast
import re
import sys
from decimal import Context, Decimal
from fractions import Fraction

__all__ = [
    "APPROX_DIGITS",
    "MAX_CHARS",
    "MAX_DECIMAL_PLACES",
    "MAX_DIGITS",
    "MAX_EXPONENT",
    "MAX_PAREN_DEPTH",
    "MAX_TREE_DEPTH",
    "CalculatorError",
    "calculate",
    "evaluate",
    "format_result",
]

MAX_CHARS = 200
MAX_PAREN_DEPTH = 20
MAX_TREE_DEPTH = 120
MAX_EXPONENT = 64
MAX_DIGITS = 30
MAX_DECIMAL_PLACES = 10
APPROX_DIGITS = 10
_LIMIT = 10**MAX_DIGITS
_ALLOWED = "only numbers and + - * / % ^ ( ) are allowed"

_BIN_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%", ast.Pow: "^"}
_THOUSANDS = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+)(?![\d,])")
_REPLACEMENTS = {"^": "**", "×": "*", "·": "*", "÷": "/", "−": "-", "–": "-"}

# What a refused node is called in the error message (the agent reads it).
_NODE_NAMES: dict[type[ast.AST], str] = {
    ast.Call: "a function call",
    ast.Attribute: "an attribute access",
    ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.Subscript: "a subscript",
    ast.Compare: "a comparison",
    ast.BoolOp: "a boolean operator",
    ast.IfExp: "an if-expression",
    ast.Tuple: "a tuple (a comma outside a thousands separator)",
    ast.List: "a list",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.NamedExpr: "an assignment",
    ast.JoinedStr: "a string",
    ast.FormattedValue: "a string",
    ast.Starred: "a starred expression",
}


class CalculatorError(ValueError):
    """The expression was refused or cannot be computed; `str(error)` is meant for the agent to read."""


def _show(expression: str, limit: int = 60) -> str:
    text = expression if len(expression) <= limit else expression[:limit] + "..."
    return f"calculate({text!r})"


def _normalize(expression: str) -> str:
    text = expression.strip()
    for old, new in _REPLACEMENTS.items():
        text = text.replace(old, new)
    text = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), text)
    return text.rstrip().removesuffix("=").rstrip()


def _check_size(value: Fraction, shown: str, what: str) -> Fraction:
    if abs(value.numerator) >= _LIMIT or value.denominator >= _LIMIT:
        raise CalculatorError(
            f"{shown}: {what} is too large (numbers must stay below 10^{MAX_DIGITS} in numerator and denominator); "
            "split the problem into smaller steps")
    return value


_OP_SYMBOLS: dict[type[ast.AST], str] = {
    ast.FloorDiv: "//", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "xor", ast.LShift: "<<", ast.RShift: ">>",
    ast.MatMult: "@", ast.Not: "not", ast.Invert: "~",
}


def _describe(node: ast.AST) -> str | None:
    """None when `node` is allowed, else what it is (for the error message)."""
    if isinstance(node, ast.Expression | ast.expr_context) or type(node) in _BIN_OPS:
        return None
    if isinstance(node, ast.UAdd | ast.USub):
        return None
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return None
        return "a string" if isinstance(value, str | bytes) else f"the constant {value!r}"
    if isinstance(node, ast.UnaryOp):
        return None if isinstance(node.op, ast.UAdd | ast.USub) else f"the operator {_OP_SYMBOLS[type(node.op)]!r}"
    if isinstance(node, ast.BinOp):
        return None if type(node.op) in _BIN_OPS else f"the operator {_OP_SYMBOLS.get(type(node.op), '?')!r}"
    if isinstance(node, ast.Name):
        return f"a name {node.id!r}"
    if type(node) in _OP_SYMBOLS:
        return None  # reported through its UnaryOp/BinOp
    return _NODE_NAMES.get(type(node), f"a {type(node).__name__} expression")


def _first_refused(tree: ast.AST) -> str | None:
    """The first refused node in reading order (innermost on ties, so `__import__('os')` reports the name)."""
    found: list[tuple[int, int, int, str]] = []
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:  # iterative: a deep tree cannot exhaust the Python stack here
        node, depth = stack.pop()
        what = _describe(node) if hasattr(node, "lineno") else None  # unpositioned parts sit inside refused nodes
        if what is not None:
            found.append((getattr(node, "lineno", 0), getattr(node, "col_offset", 0), -depth, what))
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return min(found)[3] if found else None


def _tree_depth(tree: ast.AST) -> int:
    deepest = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node)
                     if not isinstance(child, ast.operator | ast.unaryop | ast.expr_context))
    return deepest


class _Evaluator:
    """Computes an already-vetted tree (only Expression, Constant, UnaryOp and BinOp nodes reach it)."""

    def __init__(self, shown: str):
        self.shown = shown

    def eval(self, node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return self.eval(node.body)
        if isinstance(node, ast.Constant):
            return self.constant(node.value)
        if isinstance(node, ast.UnaryOp):
            value = self.eval(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp):
            left = self.eval(node.left)
            right = self.eval(node.right)
            return _check_size(self.binary(_BIN_OPS[type(node.op)], left, right), self.shown, "an intermediate result")
        raise CalculatorError(f"{self.shown}: {_ALLOWED}; found {_describe(node)}")  # unreachable after vetting

    def constant(self, value: int | float) -> Fraction:
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise CalculatorError(f"{self.shown}: a number is too large to write as a decimal; "
                                      f"numbers must stay below 10^{MAX_DIGITS}")
            return _check_size(Fraction(repr(value)), self.shown, "a number")
        return _check_size(Fraction(value), self.shown, "a number")

    def binary(self, symbol: str, left: Fraction, right: Fraction) -> Fraction:
        if symbol == "+":
            return left + right
        if symbol == "-":
            return left - right
        if symbol == "*":
            return left * right
        if symbol in "/%":
            if right == 0:
                raise CalculatorError(f"{self.shown}: division by zero ({'modulo' if symbol == '%' else 'divide'} "
                                      "by 0 is undefined); check the numbers")
            return left / right if symbol == "/" else left % right
        return self.power(left, right)

    def power(self, base: Fraction, exponent: Fraction) -> Fraction:
        if exponent.denominator != 1:
            raise CalculatorError(f"{self.shown}: exponent {exponent} is not a whole number; only whole-number "
                                  "exponents are supported (no roots)")
        e = exponent.numerator
        if abs(e) > MAX_EXPONENT:
            raise CalculatorError(f"{self.shown}: exponent {e} is too large (|exponent| must be <= {MAX_EXPONENT})")
        if base == 0 and e < 0:
            raise CalculatorError(f"{self.shown}: division by zero (0 to a negative power); check the numbers")
        # Size of the result from the operands' sizes, before computing it: digits(b^e) >= |e| * (digits(b) - 1).
        biggest = max(abs(base.numerator), base.denominator)
        if biggest > 1 and abs(e) * (len(str(biggest)) - 1) >= MAX_DIGITS:
            raise CalculatorError(f"{self.shown}: the result of a power would have about "
                                  f"{abs(e) * (len(str(biggest)) - 1)} digits or more (limit {MAX_DIGITS}); "
                                  "split the problem into smaller steps")
        return base**e


def evaluate(expression: str) -> Fraction:
    """The exact value of `expression`; raises `CalculatorError` for anything refused (see the module docstring)."""
    if not isinstance(expression, str):
        raise CalculatorError(f"calculate({expression!r}): the expression must be a string like '3 + 4', "
                              f"got {type(expression).__name__}")
    shown = _show(expression)
    if len(expression) > MAX_CHARS:
        raise CalculatorError(f"{shown}: the expression has {len(expression)} characters (limit {MAX_CHARS}); "
                              "split it into smaller steps")
    text = _normalize(expression)
    if not text:
        raise CalculatorError(f"{shown}: the expression is empty; write one like '3 + 4'")
    depth = deepest = 0
    for char in text:
        depth += (char == "(") - (char == ")")
        deepest = max(deepest, depth)
    if deepest > MAX_PAREN_DEPTH:
        raise CalculatorError(f"{shown}: parentheses nest {deepest} deep (limit {MAX_PAREN_DEPTH}); "
                              "split it into smaller steps")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"{shown}: not a valid arithmetic expression ({exc.msg}); {_ALLOWED}, "
                              "e.g. '(3 + 4) * 2'") from None
    except (ValueError, MemoryError, RecursionError) as exc:
        raise CalculatorError(f"{shown}: cannot be parsed ({type(exc).__name__}); {_ALLOWED}") from None
    refused = _first_refused(tree)
    if refused is not None:
        raise CalculatorError(f"{shown}: {_ALLOWED}; found {refused}")
    depth = _tree_depth(tree)
    if depth > MAX_TREE_DEPTH:
        raise CalculatorError(f"{shown}: the expression is nested {depth} levels deep (limit {MAX_TREE_DEPTH}); "
                              "split it into smaller steps")
    try:
        value = _Evaluator(shown).eval(tree)
    except RecursionError:  # pragma: no cover - MAX_TREE_DEPTH keeps the recursion far below Python's limit
        raise CalculatorError(f"{shown}: the expression is nested too deeply; split it into smaller steps") from None
    return _check_size(value, shown, "the result")


def format_result(value: Fraction) -> str:
    """`12`, `2.5`, or `2/3 ≈ 0.6666666667`, exact at any size (see the module docstring for the rule)."""
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    places = max(twos, fives)
    if den == 1 and places <= MAX_DECIMAL_PLACES:
        # Integer arithmetic, not Decimal (whose 28-digit context rounded (10^29 + 1) / 2 to ...0.0): the
        # denominator divides 10**places, so this division is exact.
        scaled = abs(value.numerator) * 10**places // value.denominator
        digits = str(scaled).rjust(places + 1, "0")
        return f"{'-' if value < 0 else ''}{digits[:-places]}.{digits[-places:]}"
    whole_digits = len(str(abs(value.numerator) // value.denominator))
    approx = Context(prec=max(APPROX_DIGITS, whole_digits + 1)).divide(Decimal(value.numerator),
                                                                        Decimal(value.denominator))
    return f"{value.numerator}/{value.denominator} ≈ {approx:f}"


def calculate(expression: str) -> str:
    """Evaluate `expression` exactly and format the result; raises `CalculatorError` with an agent-readable message."""
    return format_result(evaluate(expression))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print('usage: python -m examples.calc_x.calculator "EXPRESSION"', file=sys.stderr)
        return 2
    try:
        print(calculate(" ".join(args)))
    except CalculatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
