"""Answer extraction and the matching rules of `reward.score` (see its module docstring for the decisions)."""

from __future__ import annotations

import pytest

from examples.calc_x.reward import extract_answer, parse_number, score


@pytest.mark.parametrize(("text", "answer"), [
    ("### ANSWER: 7 ###", "7"),
    ("###answer:7###", "7"),
    ("blah\n###  Answer :  7  ###\n", "7"),
    ("### ANSWER 7 ###", "7"),
    ("### ANSWER: 3 ### no wait ### ANSWER: 5 ###", "5"),
    ("### ANSWER: 7", "7"),
    ("no marker here", None),
    ("", None),
    (None, None),
])
def test_extract_answer(text: str | None, answer: str | None) -> None:
    assert extract_answer(text) == answer


@pytest.mark.parametrize(("answer", "reference"), [
    ("7", "7"), ("7", 7), ("7.0", "7"), ("7 apples", "7"), ("$12.50", "12.5"), ("x = 5", "5"), ("-3", "-3"),
    ("2/3", "0.6667"), ("0.6667", "2/3"), ("0.66667", 2 / 3), ("1000.05", "1000"), ("0.0000005", "0"),
    ("50%", "0.5"), ("50%", "50"), ("0.5", "50%"), ("1,000", "1000"), ("1,234,567", "1234567"), ("1e3", "1000"),
    ("(B)", "B"), ("B", "B"), ("b)", "B"), ("B. 42", "B"), ("(b) 42", "(B)"), ("Yes.", "yes"),
])
def test_matches(answer: str, reference: str) -> None:
    result = score(f"reasoning...\n### ANSWER: {answer} ###", reference)
    assert (result.reward, result.format_ok) == (1.0, True), result.reason


@pytest.mark.parametrize(("answer", "reference"), [
    ("8", "7"), ("0.667", "2/3"), ("1001", "1000"), ("1,00", "100"), ("seven", "7"), ("C", "B"),
    ("Because", "B"), ("2/0", "1"), ("50%", "5"), ("no", "yes"), ("7 8", "7"),
])
def test_mismatches_keep_format_ok(answer: str, reference: str) -> None:
    result = score(f"### ANSWER: {answer} ###", reference)
    assert (result.reward, result.format_ok) == (0.0, True), result.reason


@pytest.mark.parametrize("text", ["The answer is 7.", "### ANSWER: ###", "ANSWER: 7", "", "#### junk ####"])
def test_missing_or_malformed_answer(text: str) -> None:
    result = score(text, "7")
    assert (result.reward, result.format_ok) == (0.0, False)
    assert result.reason


def test_parse_number() -> None:
    assert parse_number("50%") == (0.5, True)
    assert parse_number("abc") is None
    assert parse_number(float("nan")) is None
    assert parse_number(True) is None
