"""`Trainer`: wires store, LLM proxy, runners and adapter together; `dev()` tries an agent, `fit()` trains it.

Where this sits: it owns the loop. task → **store** (served over HTTP for the runner processes) → runners → agent →
**proxy** (in this process, in front of the policy's vLLM servers) → vLLM → spans → **adapter** → algorithm.

- `dev(agent, dataset, llm)`: run the agent on every task against the given OpenAI-compatible endpoint (through the
  proxy, so every call is recorded with token IDs), no training; prints a table (task, status, reward, turns,
  tokens) and where the traces are, and returns it as a `DevReport`.
- `fit(agent, train_dataset, val_dataset)`: hands the same machinery to the `algorithm` (verl PPO/GRPO lives in
  `agentlightning.verl`), which enqueues rollouts per step, reads triplets through `collect()`, updates the policy
  and publishes the new weights.

`n_runners=0` runs the agent in this process (one worker on the trainer's event loop: easiest to debug); otherwise
`n_runners` worker processes (or Ray actors with `runner_backend="ray"`) talk to the store over HTTP. Each worker
runs up to `runner_config.max_concurrency` rollouts at once. `tracer`: a `Tracer` (e.g. with extra OpenTelemetry span
processors) used by every worker; by default each worker makes a plain one.
Datasets are anything indexable of task dicts (lists, HF `datasets.Dataset`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from agentlightning.adapter import AdapterResult, TraceAdapter
from agentlightning.agent import LitAgent
from agentlightning.proxy import LLMProxy
from agentlightning.runner import RunnerConfig, worker_loop
from agentlightning.runner_pool import RunnerPool
from agentlightning.store import InMemoryLightningStore, LightningStore, LightningStoreServer
from agentlightning.tracer import Tracer
from agentlightning.types import LLM, Rollout, RolloutConfig, RolloutMode

__all__ = ["Algorithm", "DevReport", "Trainer", "TrainerSession", "task_id", "task_list"]

logger = logging.getLogger(__name__)


class Algorithm(Protocol):
    """What `Trainer.fit` drives: `fit(trainer, agent, train, val)`, which opens `trainer.session(agent, backends)`
    around the policy's vLLM servers and runs its steps with the session's `run_rollouts` and `collect`."""

    def fit(self, trainer: Trainer, agent: LitAgent, train_dataset: Any, val_dataset: Any | None) -> Any: ...


@dataclass
class DevReport:
    """One row per task: what `dev()` printed."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    store_location: str = ""

    @property
    def mean_reward(self) -> float:
        rewards = [r["reward"] for r in self.rows if r["reward"] is not None]
        return sum(rewards) / len(rewards) if rewards else 0.0

    def format_table(self) -> str:
        lines = [f"{'task':<14} {'status':<10} {'reward':>6} {'turns':>5} {'tokens':>7}  note"]
        for r in self.rows:
            reward = "-" if r["reward"] is None else f"{r['reward']:.2f}"
            lines.append(f"{str(r['task'])[:14]:<14} {r['status']:<10} {reward:>6} {r['turns']:>5} {r['tokens']:>7}"
                         f"  {r['note']}")
        lines.append(f"mean reward {self.mean_reward:.3f} over {len(self.rows)} tasks; traces: {self.store_location}")
        return "\n".join(lines)


def task_list(dataset: Any) -> list[Any]:
    """Tasks from any indexable dataset, with a clear error for things that are not."""
    try:
        return [dataset[i] for i in range(len(dataset))]
    except TypeError as exc:
        raise TypeError(f"dataset {type(dataset).__name__} is not indexable (len() and [i]); pass a list of task "
                        "dicts or an HF datasets.Dataset") from exc


class TrainerSession:
    """The running machinery of one `dev`/`fit` call: store (+ its HTTP server), proxy, runners, adapter."""

    def __init__(self, trainer: Trainer, agent: LitAgent, store: LightningStore, proxy: LLMProxy,
                 server: LightningStoreServer | None, pool: RunnerPool | None) -> None:
        self.trainer, self.agent, self.store, self.proxy = trainer, agent, store, proxy
        self.server, self.pool = server, pool

    async def run_rollouts(self, tasks: Sequence[Any], mode: RolloutMode, resources_id: str | None,
                           config: RolloutConfig | None = None, metadata: Sequence[dict[str, Any]] | None = None,
                           timeout: float | None = None, progress: Callable[[int], None] | None = None
                           ) -> list[Rollout]:
        """Enqueue one rollout per task, wait for all of them, return them (terminal) in task order.
        `progress(n_finished)` is called while waiting (every ~2 s), e.g. to move a progress bar."""
        config = config or self.trainer.rollout_config
        requests = [{"input": t, "mode": mode, "resources_id": resources_id, "config": config,
                     "metadata": dict(metadata[i]) if metadata else {}} for i, t in enumerate(tasks)]
        rollouts = await self.store.enqueue_many_rollouts(requests)
        ids = [r.rollout_id for r in rollouts]
        if self.pool is None:  # in-process: run them here, now
            config_inline = RunnerConfig(exit_when_idle_seconds=0.0,
                                         max_concurrency=self.trainer.runner_config.max_concurrency)
            await worker_loop(self.store, self.agent, "inline-0", config=config_inline, tracer=self.trainer.tracer)
        done = {r.rollout_id: r for r in await self._wait(ids, timeout, progress)}
        missing = [i for i in ids if i not in done]
        if missing:
            raise TimeoutError(f"{len(missing)} of {len(ids)} rollouts did not finish within {timeout} s (first: "
                               f"{missing[0]}); check the runner logs, or raise the timeout")
        return [done[i] for i in ids]

    async def _wait(self, ids: list[str], timeout: float | None, progress: Callable[[int], None] | None = None
                    ) -> list[Rollout]:
        """wait_for_rollouts in slices, checking between them that the runner workers are not crash-looping."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            step = 2.0 if deadline is None else max(0.0, min(2.0, deadline - loop.time()))
            done = await self.store.wait_for_rollouts(ids, timeout=step)
            if self.pool is not None:
                self.pool.check()
            if progress is not None:
                progress(len(done))
            if len(done) == len(ids) or (deadline is not None and loop.time() >= deadline):
                return done

    async def collect(self, rollout: Rollout, data_id: str | None = None) -> AdapterResult:
        """Triplets of a finished rollout's latest attempt (the adapter reports empty results with their cause)."""
        return await self.trainer.adapter.adapt_attempt(self.store, rollout.rollout_id, data_id=data_id)


class Trainer:
    """See the module docstring. `store` defaults to an in-memory store; `proxy` to an `LLMProxy` built per session
    in front of the LLM endpoint(s) given to `dev` or by the algorithm."""

    def __init__(self, n_runners: int = 2, store: LightningStore | None = None, proxy: LLMProxy | None = None,
                 algorithm: Algorithm | None = None, adapter: TraceAdapter | None = None,
                 runner_backend: Literal["process", "ray"] = "process", rollout_config: RolloutConfig | None = None,
                 runner_config: RunnerConfig | None = None, store_host: str = "127.0.0.1",
                 store_token: str | None = None, runner_log_dir: str | Path | None = None,
                 proxy_kwargs: dict[str, Any] | None = None, tracer: Tracer | None = None) -> None:
        if n_runners < 0:
            raise ValueError(f"n_runners={n_runners} must be >= 0 (0 runs the agent in this process)")
        self.n_runners, self.store, self.proxy, self.algorithm = n_runners, store, proxy, algorithm
        self.adapter = adapter or TraceAdapter()
        self.runner_backend, self.runner_config = runner_backend, runner_config or RunnerConfig()
        # Rollout timeout, heartbeat deadline and attempts: given, else the algorithm's (VerlAlgorithm: the
        # `agentlightning:` block), else a runner that dies stops heartbeating and its rollout is retried elsewhere.
        self.rollout_config = rollout_config or getattr(algorithm, "rollout_config", None) or RolloutConfig(
            unresponsive_seconds=60, max_attempts=2)
        self.store_host, self.store_token = store_host, store_token
        self.runner_log_dir = runner_log_dir  # None: a temp folder, removed after a clean stop
        self.proxy_kwargs = dict(proxy_kwargs or {})  # e.g. {"request_logprobs": True} when no `proxy` is given
        self.tracer = tracer  # None: a plain Tracer per worker (spans go to the store only)

    @contextlib.asynccontextmanager
    async def session(self, agent: LitAgent, backends: Sequence[str]) -> AsyncIterator[TrainerSession]:
        """Start store server, proxy and runners for `agent`; stop all of them on exit (also on error)."""
        if not isinstance(agent, LitAgent):
            raise TypeError(f"agent {agent!r} is not a LitAgent; subclass LitAgent or decorate a function with "
                            "@agentlightning.rollout")
        store = self.store or InMemoryLightningStore()
        proxy = self.proxy or LLMProxy(list(backends), store, **self.proxy_kwargs)
        server = pool = None
        await proxy.start()
        try:
            if self.n_runners > 0:
                server = LightningStoreServer(store, host=self.store_host, token=self.store_token)
                await server.start()
                pool = RunnerPool(agent, server.url, self.n_runners, self.runner_backend, token=self.store_token,
                                  config=self.runner_config, log_dir=self.runner_log_dir, tracer=self.tracer)
                pool.start()  # from this (long-lived) thread: workers die with it (PR_SET_PDEATHSIG)
            yield TrainerSession(self, agent, store, proxy, server, pool)
        finally:
            if pool is not None:
                await asyncio.to_thread(pool.stop)
            if server is not None:
                await server.stop()
            await proxy.stop()

    def dev(self, agent: LitAgent, dataset: Any, llm: LLM, mode: RolloutMode = "val",
            timeout: float | None = 3600) -> DevReport:
        """Run `agent` on every task of `dataset` against `llm` (no training) and print what happened."""
        return asyncio.run(self._dev(agent, dataset, llm, mode, timeout))

    async def _dev(self, agent: LitAgent, dataset: Any, llm: LLM, mode: RolloutMode, timeout: float | None
                   ) -> DevReport:
        tasks = task_list(dataset)
        async with self.session(agent, [llm.endpoint]) as session:
            resources = await session.store.add_resources(
                {"main_llm": session.proxy.as_resource(model=llm.model, sampling_parameters=llm.sampling_parameters)})
            rollouts = await session.run_rollouts(tasks, mode, resources.resources_id, timeout=timeout)
            report = DevReport(store_location=_describe_store(session.store))
            for i, rollout in enumerate(rollouts):
                result = await session.collect(rollout, data_id=task_id(rollout.input, i))
                attempt = await session.store.get_latest_attempt(rollout.rollout_id)
                note = (attempt.metadata.get("error", "") if attempt else "") or (result.empty_reason or "")
                report.rows.append({
                    "task": task_id(rollout.input, i), "rollout_id": rollout.rollout_id, "status": rollout.status,
                    "reward": result.final_reward, "turns": result.stats.get("num_llm_calls", 0),
                    "tokens": sum(len(t.prompt_token_ids) + len(t.response_token_ids) for t in result.triplets),
                    "note": note.splitlines()[0][:60] if note else ""})
        print(report.format_table(), flush=True)
        return report

    def fit(self, agent: LitAgent, train_dataset: Any, val_dataset: Any | None = None) -> Any:
        """Train `agent` with `self.algorithm` (e.g. `agentlightning.verl.VerlAlgorithm`)."""
        if self.algorithm is None:
            raise ValueError("Trainer.fit needs an algorithm, e.g. Trainer(algorithm=VerlAlgorithm(config)); "
                             "to only run the agent, use Trainer.dev(agent, dataset, llm)")
        return self.algorithm.fit(self, agent, train_dataset, val_dataset)


def task_id(task: Any, index: int) -> str:
    """A task's id for tables and GRPO groups: its `id`/`task_id`/`data_id`/`question_id`, else `#<index>`."""
    if isinstance(task, dict):
        for key in ("id", "task_id", "data_id", "question_id"):
            if key in task:
                return str(task[key])
    return f"#{index}"


def _describe_store(store: LightningStore) -> str:
    path = getattr(store, "path", None)
    if isinstance(path, Path):
        return f"SQLite store {path} (query_spans(rollout_id) per row's rollout id)"
    return f"{type(store).__name__} (in memory: pass store=SqliteLightningStore(path) to keep traces)"
