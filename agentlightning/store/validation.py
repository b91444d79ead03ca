"""Input rules every store backend enforces the same way: resources ids, span batches, wait times.

Where this sits: inside every backend, before anything is stored. The in-memory and SQLite stores call these under
their lock / in their transaction; the HTTP client checks resources ids and wait times before it sends (so an id that
could not travel in a URL never leaves the process), and the server answers each `StoreRequestError` with a 400. The
pydantic models (`agentlightning.types`) bound the numbers a request may carry; the checks here repeat the bounds for
objects built without validation (`model_copy(update=...)`), so a bad value never reaches SQLite as an
`OverflowError` (HTTP 500).

The rules (also in the contract docstring, `store/base.py`):
- A resources id is 1 to 128 characters from `A-Z a-z 0-9 . _ -` (`RESOURCES_ID_PATTERN`); `latest` (the route
  `GET /resources/latest`), `.` and `..` (URL path steps) are reserved.
- A span batch is checked whole before any span of it is stored: each span names an existing rollout and one of its
  attempts by id (`"latest"` is refused: it moves when the rollout is retried), its `sequence_id` (if given) lies in
  0..`MAX_SEQUENCE_ID`, and its `span_id` is new in its attempt or repeats an identical span (`same_span`), which is
  then answered with the stored span instead of being stored twice. A different span under a taken `span_id` is
  refused.
- A wait (`wait_for_rollouts(timeout=...)`) is None or a finite number of seconds >= 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

from agentlightning.store.base import StoreRequestError
from agentlightning.types import MAX_SEQUENCE_ID, Span

__all__ = [
    "RESERVED_RESOURCES_IDS",
    "RESOURCES_ID_PATTERN",
    "RESOURCES_ID_RULE",
    "SpanPlan",
    "check_next_sequence_id",
    "check_resources_id",
    "check_sequence_id",
    "check_span_batch",
    "check_wait_seconds",
    "same_span",
]

RESOURCES_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
RESOURCES_ID_RULE: Final = "1 to 128 characters from A-Za-z0-9._- (letters, digits, dot, underscore, hyphen)"
RESERVED_RESOURCES_IDS: Final = frozenset({"latest", ".", ".."})

SpanPlan = list[Span | int | None]
"""For each span of a batch: the stored span it repeats, the index of an earlier span of the batch it repeats, or
None for a new span."""


def check_resources_id(resources_id: Any) -> None:
    """Raise `StoreRequestError` unless `resources_id` may name stored resources (see the module docstring)."""
    if not isinstance(resources_id, str) or not RESOURCES_ID_PATTERN.fullmatch(resources_id):
        suggestion = re.sub(r"[^A-Za-z0-9._-]+", "-", str(resources_id)).strip("-")[:128] or "policy-1"
        if suggestion in RESERVED_RESOURCES_IDS:
            suggestion = "policy-1"
        raise StoreRequestError(
            f"resources id {resources_id!r} is not valid: a resources id is {RESOURCES_ID_RULE}, so it travels "
            f"unchanged in URLs such as /resources/<id>. Fix: use an id like {suggestion!r}")
    if resources_id in RESERVED_RESOURCES_IDS:
        why = ("'latest' names the newest resources (GET /resources/latest)" if resources_id == "latest"
               else "'.' and '..' are URL path steps")
        raise StoreRequestError(
            f"resources id {resources_id!r} is reserved ({why}); stored under it, the resources could never be read "
            "back. Fix: pick another id, e.g. 'policy-latest' (get_latest_resources() already reads the newest)")


def check_wait_seconds(name: str, value: float | None, method: str) -> None:
    """Raise `StoreRequestError` unless `value` is None or a finite number of seconds >= 0."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise StoreRequestError(
            f"{method}({name}={value!r}): {name} must be a finite number of seconds >= 0, or None to wait without a "
            f"limit. Fix: pass e.g. {name}=30")


def check_sequence_id(span: Span) -> None:
    """Raise `StoreRequestError` when a span's explicit `sequence_id` is outside 0..MAX_SEQUENCE_ID."""
    value = span.sequence_id
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or not 0 <= value <= MAX_SEQUENCE_ID):
        raise StoreRequestError(
            f"span {span.span_id!r}: sequence_id={value!r} is out of range; a sequence_id is an integer from 0 to "
            f"{MAX_SEQUENCE_ID} (the store's 64-bit per-attempt counter). Fix: leave sequence_id None and the store "
            "assigns the next one (or reserve one with get_next_span_sequence_id)")


def check_next_sequence_id(rollout_id: str, attempt_id: str, current: int) -> None:
    """Raise `StoreRequestError` when an attempt's span counter has no next value (it reached MAX_SEQUENCE_ID)."""
    if current >= MAX_SEQUENCE_ID:
        raise StoreRequestError(
            f"attempt {attempt_id!r} of rollout {rollout_id!r} has used span sequence id {current}, the largest "
            f"there is ({MAX_SEQUENCE_ID}); no next sequence id can be reserved. Fix: give spans small explicit "
            "sequence ids, or none (the store counts from 1)")


def _comparable(span: Span, exclude: set[str]) -> dict[str, Any]:
    try:  # as JSON: a span read back from SQLite or over HTTP has lists where the sender had tuples
        return span.model_dump(mode="json", exclude=exclude)
    except Exception:  # noqa: BLE001 - attributes that do not serialize (in-memory only): compare them as they are
        return span.model_dump(exclude=exclude)


def same_span(new: Span, stored: Span) -> bool:
    """Whether `new` is a re-send of `stored`: every field equal (`sequence_id` too, unless `new` has none)."""
    exclude = {"sequence_id"} if new.sequence_id is None else set()
    return _comparable(new, exclude) == _comparable(stored, exclude)


def check_span_batch(
    spans: Sequence[Span],
    check_attempt: Callable[[str, str], None],
    find_stored: Callable[[str, str, str], Span | None],
) -> SpanPlan:
    """Check a whole `add_spans` batch before any span of it is stored (see the module docstring).

    check_attempt(rollout_id, attempt_id) raises `NotFoundError` for an unknown rollout or attempt (called once per
    pair); find_stored(rollout_id, attempt_id, span_id) returns the span stored under that id, or None.
    Returns the batch's plan (`SpanPlan`); raises `StoreRequestError` / `NotFoundError` naming the first bad span.
    """
    checked: set[tuple[str, str]] = set()
    in_batch: dict[tuple[str, str, str], int] = {}
    plan: SpanPlan = []
    for i, span in enumerate(spans):
        check_sequence_id(span)
        if span.attempt_id == "latest":
            raise StoreRequestError(
                f"span {span.span_id!r} of rollout {span.rollout_id!r} names attempt_id 'latest'; a span must name "
                "the attempt it belongs to ('latest' moves when the rollout is retried, and a span stored under it "
                "could never be read back). Fix: use the claimed attempt's id (rollout.attempt.attempt_id)")
        if (span.rollout_id, span.attempt_id) not in checked:
            check_attempt(span.rollout_id, span.attempt_id)
            checked.add((span.rollout_id, span.attempt_id))
        key = (span.rollout_id, span.attempt_id, span.span_id)
        if key in in_batch:
            earlier: Span | None = spans[in_batch[key]]
            repeat: Span | int | None = in_batch[key]
        else:
            earlier = repeat = find_stored(*key)
        if earlier is not None and not same_span(span, earlier):
            raise StoreRequestError(
                f"span_id {span.span_id!r} is already taken in attempt {span.attempt_id!r} of rollout "
                f"{span.rollout_id!r} by a different span (name {earlier.name!r}, sequence_id {earlier.sequence_id}); "
                "a span_id names one span of its attempt, and a re-sent span must be identical to the stored one. "
                "Fix: give each span its own span_id (e.g. uuid.uuid4().hex)")
        if earlier is None:
            in_batch[key] = i
        plan.append(repeat)
    return plan
