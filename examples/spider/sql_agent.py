"""The Spider text-to-SQL agent: a LangGraph graph that writes, runs, checks and rewrites one SQLite query.

Where this sits: store → runner → **SQLAgent** → LLM proxy → vLLM, with spans (LangGraph nodes, model calls, the
reward and a `sql_result` object) going to the store and, through the adapter, to verl.

What it really is: a `StateGraph` over a small dict state, with nodes named so that `agent_match` can select them:

    write_query → execute_query → check_query ─┬─ "THE QUERY IS CORRECT" or `max_turns` queries written → END
                      ↑                        │
                      └──── rewrite_query ←────┘

- `write_query` / `rewrite_query` ask the model for a query in a ```sql block (`sql_tools.extract_sql`), after two
  worked examples on a made-up schema sent as earlier chat turns (`FEW_SHOT`; `few_shot=False` drops them);
- `execute_query` runs it on a private read-only copy of the database (`sql_tools`): the rows, or an error the model
  sees (writes, ATTACH and PRAGMA are denied; each query has a time limit); the schema and execution results shown
  to the model are cut to `table_info_truncate` / `execution_truncate` characters;
- `check_query` asks the model whether the query answers the question; the loop ends when it says so.

`SQLAgent` (a `LitAgent`) runs the graph for one Spider task — a dict with `question`, `query` (gold SQL), `db_id` and
`db_dir` (the folder holding `<db_id>/<db_id>.sqlite`) — scores the final query by execution match against the gold
query exactly as the official Spider evaluation does (`spider_eval.exec_match` of `official_prediction`, on the copy),
emits a `sql_result` object (final SQL, queries, turns, error, time-out and query-error counts) and returns the
reward: 1.0 or 0.0; errors and time-outs score 0. Training rollouts use the published sampling parameters;
validation rollouts use `val_temperature`.

    python examples/spider/evaluate_sql_agent.py --endpoint http://127.0.0.1:8000/v1 --model NAME   # run it
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from omegaconf import DictConfig

from agentlightning.agent import LitAgent, resolve_llm
from agentlightning.clients import chat_openai
from agentlightning.emitter import emit_metrics, emit_object
from agentlightning.types import LLM, AttemptedRollout, NamedResources
from examples.spider.data.loader import ENV_VAR, bundled_root, load_spider
from examples.spider.spider_eval import exec_match, official_prediction
from examples.spider.sql_tools import (
    DEFAULT_QUERY_TIMEOUT_S,
    DEFAULT_TRUNCATE,
    database_copy,
    execute_sql,
    extract_sql,
    table_info,
    truncate,
)

__all__ = [
    "CHECK_PROMPT",
    "CORRECT_MARK",
    "FEW_SHOT",
    "MAX_TURNS",
    "REWRITE_PROMPT",
    "SQLAgent",
    "SQLResult",
    "SQLState",
    "WRITE_PROMPT",
    "build_graph",
    "chat_model",
    "make_agent",
    "run_sql_agent",
    "spider_split_tasks",
    "spider_tasks",
    "task_db_path",
]

MAX_TURNS = 3  # queries written per episode, the first one plus rewrites (configs/spider.yaml: spider.max_turns)

CORRECT_MARK = "THE QUERY IS CORRECT"

WRITE_PROMPT = """You are an SQLite expert. Write one SQLite query that answers the question, using only the tables \
and columns of this database.

{table_info}

Question: {question}

Reply with the query in a ```sql code block."""

CHECK_PROMPT = """You are an SQLite expert checking a query.

{table_info}

Question: {question}

Query:
```sql
{query}
```

Result of running the query:
{execution}

If the query answers the question correctly, reply exactly: {mark}
Otherwise, say in one or two sentences what is wrong."""

REWRITE_PROMPT = """You are an SQLite expert. The query below does not answer the question yet. Write a corrected \
SQLite query.

{table_info}

Question: {question}

Previous query:
```sql
{query}
```

Result of running it:
{execution}

Feedback: {feedback}

Reply with the corrected query in a ```sql code block."""


_EXAMPLE_SCHEMA = """CREATE TABLE owner (owner_id INTEGER PRIMARY KEY, name TEXT, city TEXT)

CREATE TABLE pet (pet_id INTEGER PRIMARY KEY, owner_id INTEGER REFERENCES owner(owner_id), kind TEXT, age INTEGER)"""

# Worked examples sent as earlier chat turns before write/rewrite prompts (few-shot): small models copy a demonstrated
# reply far more readily than they follow instructions. The schema is disjoint from the bundled mini-Spider.
FEW_SHOT: list[tuple[str, str]] = [
    (WRITE_PROMPT.format(table_info=_EXAMPLE_SCHEMA, question="How many dogs are older than 3?"),
     "```sql\nSELECT count(*) FROM pet WHERE kind = 'dog' AND age > 3\n```"),
    (WRITE_PROMPT.format(table_info=_EXAMPLE_SCHEMA, question="List the names of owners who have a cat."),
     "```sql\nSELECT DISTINCT T1.name FROM owner AS T1 JOIN pet AS T2 ON T1.owner_id = T2.owner_id "
     "WHERE T2.kind = 'cat'\n```"),
]


class SQLState(TypedDict, total=False):
    """The graph state: inputs (`question`, `table_info`) and what the nodes write."""

    question: str
    table_info: str
    query: str
    execution: str
    feedback: str
    correct: bool
    turns: int
    queries: list[str]
    query_errors: int
    query_timeouts: int


class RolloutTimeoutError(TimeoutError):
    """The rollout ran past its time budget (`rollout_timeout_s`)."""


@dataclass
class SQLResult:
    """What one episode did; emitted as the `sql_result` object span."""

    db_id: str
    question: str
    final_query: str = ""
    queries: list[str] = field(default_factory=list)
    turns: int = 0
    checked_correct: bool = False
    reward: float = 0.0
    exec_reason: str | None = None
    error: str | None = None
    timed_out: bool = False
    query_errors: int = 0
    query_timeouts: int = 0


def build_graph(model: BaseChatModel, db_path: str | Path, max_turns: int = MAX_TURNS,
                execution_truncate: int = DEFAULT_TRUNCATE, query_timeout_s: float = DEFAULT_QUERY_TIMEOUT_S,
                deadline: float | None = None, few_shot: bool = True) -> Any:
    """The compiled graph for one database (`db_path` should be a `sql_tools.database_copy`).

    `model` is any LangChain chat model (`chat_model(llm, ...)` in rollouts, a scripted fake in tests). `deadline`
    (a `time.monotonic()` value) makes model nodes raise `RolloutTimeoutError` once passed. `few_shot` sends the
    `FEW_SHOT` turns before write/rewrite prompts.
    """
    from langgraph.graph import END, START, StateGraph

    if max_turns < 1:
        raise ValueError(f"max_turns={max_turns} must be >= 1 (queries written per episode, rewrites included)")

    shots: list[BaseMessage] = []
    for example, answer in FEW_SHOT if few_shot else []:
        shots += [HumanMessage(content=example), AIMessage(content=answer)]

    def ask(prompt: str, examples: bool = False) -> str:
        if deadline is not None and time.monotonic() > deadline:
            raise RolloutTimeoutError("the rollout ran out of time before the next model call")
        reply = model.invoke([*(shots if examples else []), HumanMessage(content=prompt)])
        return reply.content if isinstance(reply.content, str) else str(reply.content)

    def write_query(state: SQLState) -> SQLState:
        reply = ask(WRITE_PROMPT.format(table_info=state["table_info"], question=state["question"]), examples=True)
        query = extract_sql(reply)
        return {"query": query, "turns": state.get("turns", 0) + 1, "queries": [*state.get("queries", []), query]}

    def execute_query(state: SQLState) -> SQLState:
        outcome = execute_sql(db_path, state.get("query", ""), timeout_s=query_timeout_s, limit=execution_truncate)
        return {"execution": outcome.text,
                "query_errors": state.get("query_errors", 0) + (outcome.error is not None),
                "query_timeouts": state.get("query_timeouts", 0) + outcome.timed_out}

    def check_query(state: SQLState) -> SQLState:
        reply = ask(CHECK_PROMPT.format(table_info=state["table_info"], question=state["question"],
                                        query=state.get("query", ""), execution=state.get("execution", ""),
                                        mark=CORRECT_MARK))
        correct = CORRECT_MARK.lower() in " ".join(reply.lower().split())
        return {"feedback": truncate(reply.strip(), 1024), "correct": correct}

    def rewrite_query(state: SQLState) -> SQLState:
        reply = ask(REWRITE_PROMPT.format(table_info=state["table_info"], question=state["question"],
                                          query=state.get("query", ""), execution=state.get("execution", ""),
                                          feedback=state.get("feedback", "")), examples=True)
        query = extract_sql(reply) or state.get("query", "")  # no SQL in the reply: keep the previous query
        return {"query": query, "turns": state.get("turns", 0) + 1, "queries": [*state.get("queries", []), query]}

    def after_check(state: SQLState) -> str:
        return END if state.get("correct") or state.get("turns", 0) >= max_turns else "rewrite_query"

    graph = StateGraph(SQLState)
    graph.add_node("write_query", write_query)
    graph.add_node("execute_query", execute_query)
    graph.add_node("check_query", check_query)
    graph.add_node("rewrite_query", rewrite_query)
    graph.add_edge(START, "write_query")
    graph.add_edge("write_query", "execute_query")
    graph.add_edge("execute_query", "check_query")
    graph.add_conditional_edges("check_query", after_check, ["rewrite_query", END])
    graph.add_edge("rewrite_query", "execute_query")
    return graph.compile()


_CHAT_KEYS = ("temperature", "top_p", "max_tokens", "seed", "stop")


def chat_model(llm: LLM, temperature: float | None = None, max_tokens: int = 512, timeout_s: float = 120.0
               ) -> BaseChatModel:
    """`langchain_openai.ChatOpenAI` on the LLM's URL with its sampling parameters (`temperature` overrides), on the
    process's shared connection pool (`agentlightning.clients.chat_openai`: a new ChatOpenAI per episode is cheap)."""
    sampling = dict(llm.sampling_parameters)
    if temperature is not None:
        sampling["temperature"] = temperature
    kwargs = {key: sampling.pop(key) for key in _CHAT_KEYS if sampling.get(key) is not None}
    kwargs.setdefault("max_tokens", max_tokens)
    extra = {key: value for key, value in sampling.items() if value is not None}  # e.g. top_k: vLLM reads the body
    return chat_openai(llm, timeout=timeout_s, max_retries=1, extra_body=extra or None, **kwargs)


def spider_tasks(split: str = "dev", root: str | Path | None = None, limit: int | None = None
                 ) -> list[dict[str, Any]]:
    """Agent tasks from a Spider folder: `{id, question, query, db_id, db_dir}`.

    The folder is `root`, else `$SPIDER_DATA_DIR`, else the bundled mini-Spider. The loader checks that every db_id
    has a database; `limit` keeps the first N examples.
    """
    if root is None and not os.environ.get(ENV_VAR):
        root = bundled_root()
    dataset = load_spider(split, root)
    examples = dataset.examples if limit is None else dataset.examples[: max(0, int(limit))]
    return [{"id": f"{split}-{i}", "question": e.question, "query": e.query, "db_id": e.db_id,
             "db_dir": str(dataset.db_dir.resolve())} for i, e in enumerate(examples)]


def task_db_path(task: dict[str, Any], db_dir: str | Path | None = None) -> Path:
    """`<db_dir>/<db_id>/<db_id>.sqlite` for a task (its own `db_dir`, else the given one)."""
    missing = [key for key in ("question", "query", "db_id") if key not in task]
    folder = task.get("db_dir") or db_dir
    if missing or folder is None:
        raise ValueError(f"Spider task {dict(task)!r} lacks {missing + ([] if folder else ['db_dir'])}; a task is "
                         "{'question', 'query', 'db_id', 'db_dir'} (sql_agent.spider_tasks builds them from a "
                         "Spider folder), or pass SQLAgent(db_dir=...)")
    return Path(folder) / str(task["db_id"]) / f"{task['db_id']}.sqlite"


def run_sql_agent(task: dict[str, Any], model: BaseChatModel, db_dir: str | Path | None = None, max_turns: int = MAX_TURNS,
                  table_info_truncate: int = DEFAULT_TRUNCATE, execution_truncate: int = DEFAULT_TRUNCATE,
                  query_timeout_s: float = DEFAULT_QUERY_TIMEOUT_S, rollout_timeout_s: float | None = None,
                  few_shot: bool = True) -> SQLResult:
    """One episode on one task, scored by execution match; model errors and time-outs give reward 0 (recorded)."""
    source = task_db_path(task, db_dir)
    result = SQLResult(db_id=str(task["db_id"]), question=str(task["question"]))
    copy = database_copy(source)
    deadline = None if rollout_timeout_s is None else time.monotonic() + rollout_timeout_s
    graph = build_graph(model, copy, max_turns, execution_truncate, query_timeout_s, deadline, few_shot)
    state: SQLState = {"question": result.question, "table_info": table_info(copy, limit=table_info_truncate)}
    try:
        final = graph.invoke(state, {"recursion_limit": 3 * max_turns + 4})
    except Exception as exc:  # noqa: BLE001 - a failed model call is a 0-reward episode, recorded
        result.error = f"{type(exc).__name__}: {exc}"
        result.timed_out = isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower() \
            or "timed out" in str(exc).lower()
        return result
    result.final_query = final.get("query", "")
    result.queries = list(final.get("queries", []))
    result.turns = int(final.get("turns", 0))
    result.checked_correct = bool(final.get("correct"))
    result.query_errors = int(final.get("query_errors", 0))
    result.query_timeouts = int(final.get("query_timeouts", 0))
    # scored as the official Spider evaluation scores this prediction (evaluate_sql_agent.py reports the same)
    outcome = exec_match(copy, official_prediction(result.final_query), str(task["query"]), timeout_s=query_timeout_s)
    result.reward, result.exec_reason = float(outcome.score), outcome.reason
    return result


class SQLAgent(LitAgent):
    """The Spider SQL agent as a `LitAgent` (see the module docstring). Node names for `agent_match`:
    write_query, check_query, rewrite_query."""

    def __init__(self, max_turns: int = MAX_TURNS, val_temperature: float | None = 0.0,
                 table_info_truncate: int = DEFAULT_TRUNCATE, execution_truncate: int = DEFAULT_TRUNCATE,
                 query_timeout_s: float = DEFAULT_QUERY_TIMEOUT_S, rollout_timeout_s: float | None = 300.0,
                 max_tokens: int = 512, db_dir: str | Path | None = None, few_shot: bool = True,
                 model_factory: Callable[[LLM, float | None], BaseChatModel] | None = None) -> None:
        if max_turns < 1:
            raise ValueError(f"SQLAgent(max_turns={max_turns}): at least one query must be written; use max_turns>=1")
        self.max_turns, self.val_temperature = max_turns, val_temperature
        self.table_info_truncate, self.execution_truncate = table_info_truncate, execution_truncate
        self.query_timeout_s, self.rollout_timeout_s = query_timeout_s, rollout_timeout_s
        self.max_tokens, self.db_dir, self.few_shot = max_tokens, db_dir, few_shot
        self.model_factory = model_factory

    def _episode(self, task: Any, llm: LLM, temperature: float | None) -> float:
        model = (self.model_factory(llm, temperature) if self.model_factory is not None
                 else chat_model(llm, temperature, self.max_tokens))
        result = run_sql_agent(task, model, self.db_dir, self.max_turns, self.table_info_truncate,
                               self.execution_truncate, self.query_timeout_s, self.rollout_timeout_s, self.few_shot)
        emit_object(asdict(result), name="sql_result")
        emit_metrics({"query_errors": result.query_errors, "query_timeouts": result.query_timeouts,
                      "queries": len(result.queries), "checked_correct": result.checked_correct,
                      "episode_error": result.error is not None, "timed_out": result.timed_out})
        return result.reward

    def training_rollout(self, task: Any, resources: NamedResources, rollout: AttemptedRollout) -> float:
        return self._episode(task, resolve_llm(resources, rollout), None)

    def validation_rollout(self, task: Any, resources: NamedResources, rollout: AttemptedRollout) -> float:
        return self._episode(task, resolve_llm(resources, rollout), self.val_temperature)


def make_agent(block: DictConfig) -> SQLAgent:
    """The agent with the `spider:` config block's settings (configs/spider.yaml says what each one means)."""
    return SQLAgent(max_turns=int(block.max_turns), val_temperature=float(block.val_temperature),
                    table_info_truncate=int(block.table_info_truncate),
                    execution_truncate=int(block.execution_truncate),
                    query_timeout_s=float(block.query_timeout_s), few_shot=bool(block.few_shot),
                    rollout_timeout_s=None if block.episode_timeout_s is None else float(block.episode_timeout_s))


def spider_split_tasks(block: DictConfig, split: str) -> list[dict[str, Any]]:
    """The `spider:` block's tasks: `train_split` (first `train_size`) for "train", `val_split` (first `val_size`)
    for "val", from `data_dir` (null: $SPIDER_DATA_DIR, else the bundled mini-Spider)."""
    if split == "train":
        return spider_tasks(str(block.train_split), block.data_dir, block.train_size)
    return spider_tasks(str(block.val_split), block.data_dir, block.val_size)

