"""Reward for calc_x: find the model's final answer and compare it with the reference.

What it really is: a regex for the answer line plus a tolerant comparison, no model and no calculator.

`extract_answer(text)`: the content of the *last* `### ANSWER: <answer> ###` in `text`. Case and spacing are free
(`###answer:7###`, `### Answer : 7 ###`); the colon may be left out; the closing `###` may be replaced by the end of
the line (small models often forget it). Returns None when there is no such marker.

`score(text, reference)` → `RewardResult(reward, format_ok, reason)`:
- no marker, or an empty answer → reward 0.0, format_ok False;
- otherwise format_ok True and reward 1.0 when the answer matches the reference, else 0.0.

Matching rules (decided here; tests pin them):
- Multiple choice: when the reference is one letter A-J (optionally `(B)` / `B)` / `B.`), the answer matches if it
  starts with that letter in any of the spellings `B`, `b`, `(B)`, `B)`, `B.`, `B: text`, `(B) text`.
- Numbers: both sides are read as exact rationals: integers, decimals, `1e3`, fractions `2/3`, mixed signs, thousands
  separators `1,000` (only in valid groups of three), a leading `$`/`€`/`£`, trailing unit words (`7 apples`), a
  leading `x =`. They match when |a - b| <= max(1e-4 * |b|, 1e-6): relative 1e-4, absolute 1e-6 near zero, so
  `0.6667` matches `2/3`.
- Percentages: `50%` is read as 0.5, but a percentage answer also matches a reference equal to its bare number (the
  question "what percent...?" often has reference `50`). A percent reference (`"50%"`) is 0.5.
- Anything else: case-, space- and trailing-period-insensitive string equality (`Yes` vs `yes.`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["ABS_TOL", "REL_TOL", "RewardResult", "extract_answer", "parse_number", "score"]

REL_TOL = 1e-4
ABS_TOL = 1e-6

_ANSWER = re.compile(r"#{2,}\s*answer\s*:?[ \t]*(?P<body>[^\n#]*?)\s*(?:#{2,}|$)", re.IGNORECASE | re.MULTILINE)
_LETTER_REF = re.compile(r"^\(?([A-Ja-j])[).:]?$")
_LETTER_ANSWER = re.compile(r"^\(?([A-Za-z])(?:\)|\.|:|(?=\s)|$)")
_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?"
_NUMERIC = re.compile(
    rf"^(?:[a-zA-Z]\s*=\s*)?(?P<cur>[$€£])?\s*(?P<num>{_NUMBER})(?:\s*/\s*(?P<den>{_NUMBER}))?\s*(?P<pct>%)?"
    r"(?:\s+[a-zA-Z][a-zA-Z ]*)?\.?$"
)


@dataclass(frozen=True)
class RewardResult:
    """reward: 1.0 or 0.0. format_ok: the `### ANSWER: ... ###` marker was found with a non-empty answer.
    reason: one line saying why (for logs and debugging)."""

    reward: float
    format_ok: bool
    reason: str


def extract_answer(text: str | None) -> str | None:
    """The last `### ANSWER: <answer> ###` content, stripped; None when there is none (see module docstring)."""
    if not text:
        return None
    matches = list(_ANSWER.finditer(text))
    if not matches:
        return None
    return matches[-1].group("body").strip()


def _to_fraction(text: str) -> Fraction | None:
    if not text or not any(ch.isdigit() for ch in text):
        return None
    try:
        return Fraction(text.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def parse_number(text: str | int | float | Fraction) -> tuple[Fraction, bool] | None:
    """`(value, is_percent)` for a numeric answer or reference (percent already divided by 100), else None."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int | Fraction):
        return Fraction(text), False
    if isinstance(text, float):
        return (Fraction(repr(text)), False) if text == text and abs(text) != float("inf") else None
    match = _NUMERIC.match(text.strip().replace("−", "-"))
    if match is None:
        return None
    value = _to_fraction(match.group("num"))
    if value is None:
        return None
    if match.group("den"):
        den = _to_fraction(match.group("den"))
        if den is None or den == 0:
            return None
        value = value / den
    if match.group("pct"):
        return value / 100, True
    return value, False


def _close(a: Fraction, b: Fraction) -> bool:
    return abs(a - b) <= max(Fraction(REL_TOL) * abs(b), Fraction(ABS_TOL))


def _norm_text(text: str) -> str:
    return " ".join(text.strip().rstrip(".").lower().split())


def score(text: str | None, reference: str | int | float | Fraction) -> RewardResult:
    """Score a model's output `text` (the whole message, or just the answer marker) against `reference`."""
    answer = extract_answer(text)
    if answer is None:
        return RewardResult(0.0, False, "no '### ANSWER: <answer> ###' found")
    if not answer:
        return RewardResult(0.0, False, "the '### ANSWER: ... ###' marker is empty")
    ref_text = str(reference).strip()
    letter = _LETTER_REF.match(ref_text)
    if letter:
        got = _LETTER_ANSWER.match(answer.strip())
        if got and got.group(1).upper() == letter.group(1).upper():
            return RewardResult(1.0, True, f"choice {letter.group(1).upper()} matches")
        return RewardResult(0.0, True, f"answer {answer!r} is not choice {letter.group(1).upper()}")
    ref_num = parse_number(reference if not isinstance(reference, str) else ref_text)
    if ref_num is not None:
        got_num = parse_number(answer)
        if got_num is None:
            return RewardResult(0.0, True, f"answer {answer!r} is not a number (reference {ref_text})")
        value, is_percent = got_num
        candidates = [value, value * 100] if is_percent else [value]
        if any(_close(c, ref_num[0]) for c in candidates):
            return RewardResult(1.0, True, f"{answer!r} matches {ref_text}")
        return RewardResult(0.0, True, f"{answer!r} != {ref_text}")
    if _norm_text(answer) == _norm_text(ref_text):
        return RewardResult(1.0, True, f"{answer!r} matches {ref_text!r}")
    return RewardResult(0.0, True, f"{answer!r} != {ref_text!r}")
