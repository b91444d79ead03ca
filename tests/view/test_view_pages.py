"""`agl view` in a real browser (headless Chromium) on a hand-made run: a SQLite store written through the store API,
step records written by `agentlightning.verl.records`, a metrics.jsonl. No model: the model text here is chosen to be
hostile (a reply with `<script>`), and the step is big enough to page. The same pages on a real training run:
test_view_real_run.py."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agentlightning.store import SqliteLightningStore
from agentlightning.types import Span
from agentlightning.verl import records
from tests.view.browser import agl_server, browse

HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"
N_ROLLOUTS = 130  # more than one page (pages.PAGE_SIZE = 100)


async def _fill_store(db: Path) -> list[str]:
    """N_ROLLOUTS training rollouts of policy v0 in groups of 2; rollout 0 replied HOSTILE; rollout 1 failed."""
    store = SqliteLightningStore(db)
    ids = []
    try:
        for k in range(N_ROLLOUTS):
            task = {"id": f"t{k // 2}", "question": f"What is {k}+1?" if k else f"Explain {HOSTILE}"}
            await store.enqueue_rollout(task, mode="train", metadata={"data_id": f"t{k // 2}", "policy_version": 0})
            claimed = await store.dequeue_rollout(f"runner-{k % 3}")
            assert claimed is not None
            rid, aid = claimed.rollout_id, claimed.attempt.attempt_id
            ids.append(rid)
            reply = HOSTILE if k == 0 else f"The answer is {k + 1}."
            now = time.time()
            await store.add_spans([
                Span(rollout_id=rid, attempt_id=aid, span_id=f"{k:08x}01", name="agentlightning.agent",
                     start_time=now, end_time=now + 0.5, attributes={"agent_name": "solver"}),
                Span(rollout_id=rid, attempt_id=aid, span_id=f"{k:08x}02", name="llm.call", start_time=now + 0.1,
                     end_time=now + 0.4, status="ok", attributes={
                         "request": {"messages": [{"role": "user", "content": task["question"]}]},
                         "response": {"text": reply}, "prompt_token_ids": [1, 2, 3],
                         "response_token_ids": [4, 5, 2]})])
            if k == 1:
                await store.update_attempt(rid, aid, status="failed", metadata={
                    "error": "APIConnectionError: Connection refused", "cause": "infra"})
            else:
                await store.update_attempt(rid, aid, status="succeeded")
    finally:
        await store.close()
    return ids


@pytest.fixture(scope="module")
def hand_made_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("view_run")
    db = out / "store.db"
    ids = asyncio.run(_fill_store(db))
    (out / "config.yaml").write_text(f"agentlightning:\n  store: {db}\n")
    rows = [{"step": 0, "val/accuracy": 0.5, "val/accuracy/word1": 0.6, "val/accuracy/word2": 0.1}]
    rows += [{"step": s, "accuracy": 0.3 + 0.1 * s, "reward/mean": 0.3 + 0.1 * s, "rollout/count": 130.0,
              "rollout/failed": 1.0, "rollout/infra_failed": 1.0, "batch/num_samples": 3.0, "timing_s/step": 90.0,
              "timing_s/rollout": 30.0, "timing_s/update": 58.0, "timing_s/weight_sync": 1.0} for s in (1, 2, 3)]
    rows[-1].update({"val/accuracy": 0.8, "val/accuracy/word1": 0.9, "val/accuracy/word2": 0.4})
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rollouts = [{"rollout_id": rid, "data_id": f"t{k // 2}", "group": "word1", "status": "failed" if k == 1 else
                 "succeeded", "cause": "infra" if k == 1 else None, "reward": float(k % 2) if k != 1 else None,
                 "turns": 0 if k in (1, 3) else 1, "tokens": 2, "empty_reason": "no llm.call spans" if k == 3 else None,
                 "problems": ["rollout x: trajectory merge failed at llm.call seq=3: prompt differs from previous "
                              "prompt+response at token 7 of 12 (expected id 13, got 99), inside the previous "
                              "response; kept as a separate sample"] if k == 2 else []}
                for k, rid in enumerate(ids)]
    samples = [{"rollout_id": ids[0], "turn": 0, "group": "t0", "sequence_ids": [2], "prompt_ids": [1, 2, 3],
                "response_ids": [4, 5, 6, 7, 2], "response_mask": [1, 1, 0, 0, 1],
                "logprobs": [-0.1, -3.0, 0.0, 0.0, -0.5], "advantages": [0.71, 0.71, 0.0, 0.0, 0.71], "reward": 0.0,
                "reward_index": 4}]
    records.write_step(out, 1, records.mark_update(rollouts, samples), samples)
    return out


@pytest.fixture(scope="module")
def view(hand_made_run: Path) -> Iterator[str]:
    with agl_server("view", str(hand_made_run), "--token", "s3cret") as base:
        yield base


def test_every_page_needs_the_token(view: str) -> None:
    for path in ["/", "/step/1", "/rollout/x"]:
        response = httpx.get(view + path)
        assert response.status_code == 401 and "?token=" in response.text
    assert httpx.get(view + "/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert httpx.get(view + "/", params={"token": "wrong"}).status_code == 401


def test_run_page_shows_the_curves_and_the_steps(view: str) -> None:
    page = browse(f"{view}/?token=s3cret")
    charts = [svg.attrs.get("aria-label") for svg in page.find_all("svg")]
    assert charts == ["training accuracy per step", "validation accuracy", "reward (mean) per step",
                      "time per step (s)"]
    validation = page.find_all("div", cls="chart")[1].text
    assert "accuracy/word1" in validation and "accuracy/word2" in validation  # one series per difficulty
    rows = page.one("table", id="steps").find_all("tr")
    assert [r.find_all("td")[0].text for r in rows[1:]] == ["step 1", "step 2", "step 3"]
    assert "infra failed" in rows[0].text and "merge failures" in rows[0].text


def test_step_page_groups_sorts_filters_and_pages(view: str) -> None:
    page = browse(f"{view}/step/1?token=s3cret")
    groups = page.find_all("tr", cls="group")
    assert groups[0].text.startswith("GRPO group t0 · 2 episodes")
    rollouts = page.find_all("tr", cls="rollout")
    assert len(rollouts) == 100 and "Explain <script>" in rollouts[0].text  # page 1 of 2; the task shown as text
    assert "failed (infra)" in rollouts[1].text and "Connection refused" in rollouts[1].text
    assert "no samples: no llm.call spans" in rollouts[3].text and "runner-" in rollouts[0].text
    assert [a.text for a in page.find_all("a") if a.text in ("1", "2")] == ["2", "2"]  # pager above and below
    second = browse(f"{view}/step/1?token=s3cret&page=2")
    assert len(second.find_all("tr", cls="rollout")) == N_ROLLOUTS - 100
    failed = browse(f"{view}/step/1?token=s3cret&status=failed")
    assert [r.find_all("td")[3].text for r in failed.find_all("tr", cls="rollout")] == ["failed (infra)"]
    by_reward = browse(f"{view}/step/1?token=s3cret&sort=reward&order=desc").find_all("tr", cls="rollout")
    assert by_reward[0].find_all("td")[5].text == "1.00" and not page.find_all("script")


def test_rollout_page_escapes_model_text_and_shows_what_was_trained(view: str, hand_made_run: Path) -> None:
    record = records.read_step(hand_made_run, 1)
    assert record is not None
    first = record["rollouts"][0]["rollout_id"]
    page = browse(f"{view}/rollout/{first}?token=s3cret")
    assert not page.find_all("script") and not page.find_all("img")  # the reply's markup never became elements
    assert page.one("title").text == f"Rollout {first}"  # the injected script did not retitle the page
    assert page.one("pre", cls="reply").text == HOSTILE  # shown as the text it is
    assert len(page.one("svg", id="timeline").find_all("rect")) == 2  # agent step + model call
    strip = page.one("div", cls="response")
    tokens = strip.find_all("span", cls="tok")
    assert len(tokens) == 5 and len(strip.find_all("span", cls="masked")) == 2  # tool output masked
    assert len(strip.find_all("span", cls="reward")) == 1 and tokens[4].attrs["class"].endswith("reward")
    assert "logprob -3.0 · advantage 0.71" in tokens[1].attrs["title"]
    assert page.one("span", cls="advantage").text == "+0.710"
    merged = browse(f"{view}/rollout/{record['rollouts'][2]['rollout_id']}?token=s3cret")
    assert "at token 7 of 12 (expected id 13, got 99)" in merged.one("table", id="facts").text  # the first mismatch
    assert "surplus group" in merged.one("p", id="no-samples").text  # and why it trained nothing


def test_a_store_server_is_a_source_too(hand_made_run: Path, tmp_path: Path) -> None:
    """`agl view http://HOST:PORT`: the same steps, rollouts, attempts and spans through a store server (no step
    records there: the training rollouts grouped by policy version)."""
    import shutil

    from agentlightning.view import RunSource

    db = tmp_path / "copy.db"
    shutil.copyfile(hand_made_run / "store.db", db)
    with agl_server("store", "--backend", "sqlite", "--path", str(db), "--token", "t0k") as url:
        source = RunSource(url, token="t0k")

        async def read() -> tuple[list[int], dict, dict]:
            step = await source.step(1)
            return await source.steps(), step, await source.rollout(step["rollouts"][0]["rollout_id"])

        steps, step, rollout = asyncio.run(read())
        assert steps == [1] and not step["recorded"] and len(step["rollouts"]) == N_ROLLOUTS
        assert {r["attempts"] for r in step["rollouts"]} == {1} and step["rollouts"][1]["status"] == "failed"
        assert [s.name for s in rollout["spans"]] == ["agentlightning.agent", "llm.call"]
