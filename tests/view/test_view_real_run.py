"""`agl view` on a real recorded run: the session's calc_x training step (`calc_x_run`: the user's command with the
calc_x config, so its SQLite store and step records are what `make demo` writes), browsed in headless Chromium.
The rollout page's screenshot is the one in README.md (set AGL_VIEW_SCREENSHOT=PATH to keep it)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentlightning.verl import records
from tests.view.browser import agl_server, browse, screenshot

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(960)]


@pytest.fixture(scope="module")
def real_view(calc_x_run: tuple[Path, Any]) -> Iterator[tuple[str, Path]]:
    out, result = calc_x_run
    assert result.returncode == 0, result.stderr[-4000:]
    with agl_server("view", str(out)) as base:
        yield base, out


def test_run_and_step_pages_of_a_real_run(real_view: tuple[str, Path]) -> None:
    base, out = real_view
    run = browse(base + "/")
    steps = run.one("table", id="steps").find_all("tr")
    assert [r.find_all("td")[0].text for r in steps[1:]] == ["step 1"]
    assert "accuracy/word1" in run.find_all("div", cls="chart")[1].text  # validation per difficulty, steps 0 and 1
    step = browse(base + "/step/1")
    rollouts = step.find_all("tr", cls="rollout")
    assert len(rollouts) == 4 and len(step.find_all("tr", cls="group")) == 2  # 2 tasks x 2 episodes, grouped
    assert all("runner-" in r.text for r in rollouts)  # the worker that played it, from the store
    record = records.read_step(out, 1)
    assert record is not None and len(record["samples"]) >= 1


def test_rollout_page_of_a_real_run_shows_the_trained_tokens(real_view: tuple[str, Path]) -> None:
    base, out = real_view
    record = records.read_step(out, 1)
    assert record is not None
    trained = max(record["samples"], key=lambda s: s["response_mask"].count(0))  # with tool output, if any
    page = browse(f"{base}/rollout/{trained['rollout_id']}")
    calls = page.one("div", id="chat").find_all("details", cls="call")
    assert calls and "calculator" in page.one("div", id="chat").text  # the calc_x prompt, as the model saw it
    assert len(page.one("svg", id="timeline").find_all("rect")) >= len(calls)
    strips = page.find_all("div", cls="response")
    assert len(strips) == sum(1 for s in record["samples"] if s["rollout_id"] == trained["rollout_id"])
    tokens = strips[0].find_all("span", cls="tok")
    assert len(tokens) == len(trained["response_ids"])
    masked = strips[0].find_all("span", cls="masked")
    assert len(masked) == trained["response_mask"].count(0)  # the calculator's output, not trained
    assert len(strips[0].find_all("span", cls="reward")) == 1
    assert "advantage" in tokens[0].attrs["title"] and page.find_all("span", cls="advantage")
    shot = screenshot(f"{base}/rollout/{trained['rollout_id']}", out / "rollout_page.png", 1280, 1000)
    assert shot.stat().st_size > 20_000
    if target := os.environ.get("AGL_VIEW_SCREENSHOT"):
        shutil.copyfile(shot, target)
