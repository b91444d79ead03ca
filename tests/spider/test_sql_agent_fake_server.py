"""SQLAgent through the real runtime (Trainer.dev: store, LLM proxy, runner, tracer) against a FAKE OpenAI server that
answers the gold SQL for known questions and "THE QUERY IS CORRECT" to checks; then evaluate_sql_agent's CLI on it.
Fast and offline: the real-model version is tests/spider/test_sql_agent_vllm.py."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request

from agentlightning import LLM, InMemoryLightningStore, Trainer, semconv
from examples.spider import evaluate_sql_agent
from examples.spider.sql_agent import CORRECT_MARK, SQLAgent, spider_tasks

TASKS = spider_tasks("dev", limit=3)
GOLD = {t["question"]: t["query"] for t in TASKS}


class FakeSQLServer:
    """A fake OpenAI chat server in a thread: gold SQL for write prompts, CORRECT_MARK for check prompts, except for
    questions in `wrong`, which get a query returning nothing."""

    def __init__(self, wrong: set[str] | None = None) -> None:
        self.wrong, self.requests = wrong or set(), []  # type: ignore[var-annotated]
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> dict[str, Any]:
            body = await request.json()
            self.requests.append(body)
            prompt = body["messages"][-1]["content"]
            question = re.search(r"Question: (.*)", prompt).group(1)  # type: ignore[union-attr]
            if "checking a query" in prompt:
                text = CORRECT_MARK
            else:
                text = f"```sql\n{'SELECT 1 WHERE 0' if question in self.wrong else GOLD[question]}\n```"
            return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body["model"],
                    "prompt_token_ids": [1, 2, 3],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop", "token_ids": [7, 8, 2]}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}}

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> FakeSQLServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "fake server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}/v1"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeSQLServer]:
    with FakeSQLServer(wrong={TASKS[2]["question"]}) as server:
        yield server


def test_sql_agent_through_trainer_dev(fake_server: FakeSQLServer) -> None:
    store = InMemoryLightningStore()
    llm = LLM(endpoint=fake_server.url, model="fake-sql", sampling_parameters={"temperature": 0.7, "max_tokens": 64})
    report = Trainer(n_runners=0, store=store).dev(SQLAgent(max_turns=2), TASKS, llm)
    assert [r["status"] for r in report.rows] == ["succeeded"] * 3
    assert [r["reward"] for r in report.rows] == [1.0, 1.0, 0.0]
    spans = asyncio.run(store.query_spans(report.rows[0]["rollout_id"]))
    names = [s.name for s in spans]
    assert names.count(semconv.LLM_CALL) == 2 and names.count(semconv.REWARD) == 1
    assert [s.attributes[semconv.AGENT_NAME] for s in spans if s.name == semconv.AGENT] == [
        "write_query", "execute_query", "check_query"]
    result = next(s.attributes["json"] for s in spans if s.name == semconv.OBJECT)
    assert result["final_query"] == TASKS[0]["query"] and result["turns"] == 1 and result["error"] is None
    # validation rollouts (dev's mode="val") use the agent's val_temperature, not the published 0.7
    assert {r["temperature"] for r in fake_server.requests} == {0.0}


def test_evaluate_cli_prints_the_official_table(fake_server: FakeSQLServer, capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    details = tmp_path / "details.json"
    code = evaluate_sql_agent.main(["--endpoint", fake_server.url, "--model", "fake-sql", "--limit", "3",
                                    "--n-runners", "0", "--details", str(details)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "EXECUTION ACCURACY" in out and "EXACT MATCHING ACCURACY" in out
    row = next(line for line in out.splitlines() if line.startswith("execution"))
    assert row.split()[-1] == "0.667"  # 2 of 3 right overall
    assert details.is_file() and '"final_query"' in details.read_text()


def test_evaluate_cli_explains_bad_arguments(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert evaluate_sql_agent.main(["--endpoint", "http://127.0.0.1:9/v1"]) == 2
    assert "--model" in capsys.readouterr().err
    assert evaluate_sql_agent.main(["--endpoint", "http://127.0.0.1:9/v1", "--model", "m",
                                    "--data-dir", str(tmp_path)]) == 2
    assert "dev file not found" in capsys.readouterr().err


def test_evaluate_cli_explains_a_checkpoint_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"--checkpoint .*is not an HF model folder.*Fix: pass one of those"):
        evaluate_sql_agent.main(["--checkpoint", str(tmp_path)])
