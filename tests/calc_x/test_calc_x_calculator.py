"""The calculator refuses code and oversized work quickly, with messages that say what was found, and is exact."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest

from examples.calc_x.calculator import MAX_CHARS, CalculatorError, calculate, evaluate, format_result


@pytest.mark.parametrize(("expression", "fragment"), [
    ("__import__('os').system('x')", "found a name '__import__'"),
    ('__import__("os")', "found a name '__import__'"),
    ("(1).__class__", "found an attribute access"),
    ("().__class__.__bases__[0].__subclasses__()", "found a"),
    ("lambda: 1", "found a lambda"),
    ("x + 1", "found a name 'x'"),
    ("[i for i in (1, 2)]", "found a comprehension"),
    ("{i: i for i in (1, 2)}", "found a comprehension"),
    ("'a' * 3", "found a string"),
    ("open('/etc/passwd')", "found a name 'open'"),
    ("1 if 1 else 2", "found an if-expression"),
    ("1 < 2", "found a comparison"),
    ("7 // 2", "found the operator '//'"),
    ("True + 1", "found the constant True"),
    ("(x := 3)", "found a name 'x'"),
])
def test_code_is_refused_with_what_was_found(expression: str, fragment: str) -> None:
    with pytest.raises(CalculatorError) as info:
        calculate(expression)
    message = str(info.value)
    assert message.startswith("calculate(")
    assert "only numbers and + - * / % ^ ( ) are allowed" in message
    assert fragment in message


@pytest.mark.parametrize(("expression", "fragment"), [
    ("9**9**9", "exponent 387420489 is too large"),
    ("10**10**10", "exponent 10000000000 is too large"),
    ("9^9^9", "exponent 387420489 is too large"),
    ("2**100", "exponent 100 is too large"),
    ("99**40", "would have about"),
    ("10**29 * 10 * 10", "too large"),
    ("1" * (MAX_CHARS + 1), f"limit {MAX_CHARS}"),
    ("(" * 50 + "1" + ")" * 50, "parentheses nest 50 deep"),
    ("-" * 150 + "1", "nested 151 levels deep"),
    ("1/0", "division by zero"),
    ("5 % (3 - 3)", "division by zero"),
    ("0 ^ -1", "division by zero"),
    ("2 ** 0.5", "not a whole number"),
    ("1e999", "too large"),
    ("3 4", "not a valid arithmetic expression"),
    ("", "empty"),
])
def test_bounds_are_checked_quickly(expression: str, fragment: str) -> None:
    started = time.perf_counter()
    with pytest.raises(CalculatorError) as info:
        calculate(expression)
    assert time.perf_counter() - started < 0.5
    assert fragment in str(info.value)


def test_non_string_input_is_an_error_not_a_crash() -> None:
    with pytest.raises(CalculatorError, match="must be a string"):
        evaluate(12)  # type: ignore[arg-type]


def test_exact_arithmetic() -> None:
    assert evaluate("1/3+1/3+1/3") == 1
    assert evaluate("0.1 + 0.2") == Fraction(3, 10)
    assert evaluate("2^10") == 1024
    assert evaluate("2**-2") == Fraction(1, 4)
    assert evaluate("-(3 - 5) * +2") == 4
    assert evaluate("7 % 3") == 1
    assert evaluate("1,000 + 5") == 1005
    assert evaluate("3 × 4 ÷ 2 =") == 6
    assert evaluate("1+" * 99 + "1") == 100  # long flat chains are fine


@pytest.mark.parametrize(("value", "text"), [
    (Fraction(12), "12"), (Fraction(-3), "-3"), (Fraction(5, 2), "2.5"), (Fraction(1, 8), "0.125"),
    (Fraction(2, 3), "2/3 ≈ 0.6666666667"), (Fraction(-7, 3), "-7/3 ≈ -2.333333333"),
])
def test_format(value: Fraction, text: str) -> None:
    assert format_result(value) == text
    assert calculate("1/3 + 1/3") == "2/3 ≈ 0.6666666667"


@pytest.mark.parametrize(("expression", "text"), [
    ("(10^29 + 1) / 2", "50000000000000000000000000000.5"),
    ("-(10^29 + 1) / 8", "-12500000000000000000000000000.125"),
    ("123456789012345678901234567891 / 10^10", "12345678901234567890.1234567891"),
    ("(10^29 + 7) / 5", "20000000000000000000000000001.4"),
    ("10^29 / 3", "100000000000000000000000000000/3 ≈ 33333333333333333333333333333.3"),
    ("-(10^29 + 1) / 3", "-100000000000000000000000000001/3 ≈ -33333333333333333333333333333.7"),
    ("(10^29 + 1) / 2^11", "100000000000000000000000000001/2048 ≈ 48828125000000000000000000.0"),
])
def test_large_values_are_exact_or_visibly_rounded(expression: str, text: str) -> None:
    assert calculate(expression) == text


@pytest.mark.parametrize("value", [
    Fraction(10**29 + 1, 2), Fraction(-(10**29) - 1, 8), Fraction(10**29, 3), Fraction(-(10**29) - 1, 3),
    Fraction(10**29 + 1, 2048), Fraction(2, 3), Fraction(-7, 3), Fraction(1, 7 * 10**20), Fraction(10**20 + 1, 10**10),
    Fraction(5, 2), Fraction(10**29 - 1), Fraction(1, 2**40),
])
def test_every_format_matches_the_value_under_the_reward(value: Fraction) -> None:
    """What the agent may copy (the exact part, or the part after `≈`) scores 1.0 against the exact reference, and
    the exact part reads back as exactly the value; an approximation never shows a rounded integer part as exact."""
    from examples.calc_x.reward import parse_number, score

    text = format_result(value)
    exact, _, approx = text.partition(" ≈ ")
    assert parse_number(exact) == (value, False)
    reference = f"{value.numerator}/{value.denominator}" if value.denominator != 1 else str(value.numerator)
    assert score(f"### ANSWER: {exact} ###", reference).reward == 1.0
    if approx:
        assert score(f"### ANSWER: {approx} ###", reference).reward == 1.0
        whole = abs(value.numerator) // value.denominator
        assert abs(int(approx.split(".")[0])) in (whole, whole + 1), text  # every integer digit shown is right
