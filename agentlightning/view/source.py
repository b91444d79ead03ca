"""Where `agl view` reads a run from: a run's output folder, a SQLite store file, or a store URL.

Where this sits: beside the loop, read-only. task → store → runner → agent → proxy → vLLM → spans → adapter → verl
batch → update → **records + metrics + store → `agl view`**.

- An output folder (`outputs/calc_x/cpu`): `metrics.jsonl` (the run page), `steps/step_N.json` (what each step played
  and trained, `agentlightning.verl.records`), `config.yaml` (the model, for decoding tokens, and the store: a SQLite
  path in `agentlightning.store` gives the spans; with the in-memory store the spans died with the run, and the pages
  show what the records hold).
- A SQLite store file: opened read-only (`mode=ro`: the viewer never sweeps, requeues or writes), paged in SQL.
- A store URL (`http://host:port`, `--token` as for `agl store`): `LightningStoreClient`.
Steps of a store without records are its training rollouts grouped by `metadata.policy_version` (+1).
"""

from __future__ import annotations

import json
import sqlite3
from functools import cached_property
from pathlib import Path
from typing import Any

from agentlightning.types import Attempt, Rollout, Span
from agentlightning.verl import records

__all__ = ["RunSource"]


class _SqliteReader:
    """Read-only queries on a SQLite store file (the schema of `agentlightning.store.sqlite`)."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"no SQLite store at {path}. Fix: pass the .db file the run wrote "
                                    "(agentlightning.store=PATH.db), or the run's output folder")
        self.path = path

    def _conn(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10.0)
        conn.execute("PRAGMA query_only=1")
        return conn

    def steps(self) -> list[int]:
        with self._conn() as conn:
            rows = conn.execute("SELECT DISTINCT json_extract(data, '$.metadata.policy_version') FROM rollouts "
                                "WHERE json_extract(data, '$.mode') = 'train'").fetchall()
        return sorted(int(v) + 1 for (v,) in rows if isinstance(v, int))

    def step_rollouts(self, step: int) -> list[Rollout]:
        with self._conn() as conn:
            rows = conn.execute("SELECT data FROM rollouts WHERE json_extract(data, '$.mode') = 'train' AND "
                                "json_extract(data, '$.metadata.policy_version') = ? ORDER BY rowid", (step - 1,))
            return [Rollout.model_validate_json(d) for (d,) in rows]

    def rollouts(self, ids: list[str]) -> dict[str, Rollout]:
        out: dict[str, Rollout] = {}
        with self._conn() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for (d,) in conn.execute(f"SELECT data FROM rollouts WHERE rollout_id IN ({marks})", chunk):
                    rollout = Rollout.model_validate_json(d)
                    out[rollout.rollout_id] = rollout
        return out

    def attempts(self, ids: list[str]) -> dict[str, list[Attempt]]:
        out: dict[str, list[Attempt]] = {i: [] for i in ids}
        with self._conn() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for (d,) in conn.execute(f"SELECT data FROM attempts WHERE rollout_id IN ({marks}) "
                                         "ORDER BY sequence_id", chunk):
                    attempt = Attempt.model_validate_json(d)
                    out[attempt.rollout_id].append(attempt)
        return out

    def spans(self, rollout_id: str, attempt_id: str) -> list[Span]:
        with self._conn() as conn:
            rows = conn.execute("SELECT data FROM spans WHERE rollout_id = ? AND attempt_id = ? ORDER BY sequence_id",
                                (rollout_id, attempt_id))
            return [Span.model_validate_json(d) for (d,) in rows]

    def counts(self) -> dict[str, int]:
        with self._conn() as conn:
            return {"rollouts": conn.execute("SELECT COUNT(*) FROM rollouts").fetchone()[0],
                    "spans": conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0]}


class _HttpReader:
    """The same queries through a store server (`LightningStoreClient`)."""

    def __init__(self, url: str, token: str | None) -> None:
        from agentlightning.store import LightningStoreClient

        self.client = LightningStoreClient(url, token=token)

    async def _all(self) -> list[Rollout]:
        return await self.client.query_rollouts()

    async def steps(self) -> list[int]:
        return sorted({int(r.metadata["policy_version"]) + 1 for r in await self._all()
                       if r.mode == "train" and isinstance(r.metadata.get("policy_version"), int)})

    async def step_rollouts(self, step: int) -> list[Rollout]:
        return [r for r in await self._all() if r.mode == "train" and r.metadata.get("policy_version") == step - 1]

    async def rollouts(self, ids: list[str]) -> dict[str, Rollout]:
        return {r.rollout_id: r for r in await self.client.query_rollouts(rollout_ids=ids)}

    async def attempts(self, ids: list[str]) -> dict[str, list[Attempt]]:
        return {i: await self.client.query_attempts(i) for i in ids}

    async def spans(self, rollout_id: str, attempt_id: str) -> list[Span]:
        return await self.client.query_spans(rollout_id, attempt_id)

    async def counts(self) -> dict[str, int]:
        return {"rollouts": len(await self._all())}


async def _call(reader: Any, name: str, *args: Any) -> Any:
    """Call a reader method: SQLite's are plain functions, HTTP's coroutines."""
    result = getattr(reader, name)(*args)
    return await result if hasattr(result, "__await__") else result


class RunSource:
    """What `agl view` shows, from `target`: an output folder, a `.db`/`.sqlite` file, or an `http(s)://` store URL."""

    def __init__(self, target: str, token: str | None = None) -> None:
        self.target = target
        self.folder: Path | None = None
        self.store: Any = None
        if target.startswith(("http://", "https://")):
            self.store = _HttpReader(target, token)
        elif Path(target).is_dir():
            self.folder = Path(target)
            db = self._config_value("agentlightning", "store")
            if db and db != "memory":
                path = Path(db) if Path(db).is_absolute() else self.folder / db
                path = path if path.is_file() else Path(db)  # relative to the working directory of the run
                if path.is_file():
                    self.store = _SqliteReader(path)
        elif Path(target).is_file():
            self.store = _SqliteReader(Path(target))
        else:
            raise FileNotFoundError(f"{target!r} is neither a run's output folder, a SQLite store file, nor a store "
                                    "URL. Fix: `agl view outputs/calc_x/cpu` (after `make demo`), `agl view "
                                    "runs/train.db`, or `agl view http://127.0.0.1:4747 --token ...`")

    # ------------------------------------------------------------------ run-level
    @cached_property
    def config(self) -> dict[str, Any]:
        path = self.folder / "config.yaml" if self.folder else None
        if path is None or not path.is_file():
            return {}
        from omegaconf import OmegaConf

        from agentlightning.verl.config import register_resolvers

        register_resolvers()  # the saved config may name ${agl_default_model:}
        loaded = OmegaConf.load(path)
        try:
            return OmegaConf.to_container(loaded, resolve=True)  # type: ignore[return-value]
        except Exception:  # noqa: BLE001 - an interpolation this process cannot resolve: show it unresolved
            return OmegaConf.to_container(loaded, resolve=False)  # type: ignore[return-value]

    def _config_value(self, *keys: str) -> Any:
        value: Any = self.config
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def metrics(self) -> list[dict[str, Any]]:
        """The rows of `metrics.jsonl` (the last row per step: a resumed run may repeat one)."""
        path = self.folder / "metrics.jsonl" if self.folder else None
        if path is None or not path.is_file():
            return []
        rows: dict[int, dict[str, Any]] = {}
        for line in path.read_text().splitlines():
            if line.strip():
                with_step = json.loads(line)
                rows[int(with_step.get("step", 0))] = with_step
        return [rows[k] for k in sorted(rows)]

    async def steps(self) -> list[int]:
        if self.folder is not None:
            found = set(records.step_numbers(self.folder)) | {int(r["step"]) for r in self.metrics() if r["step"] > 0}
            return sorted(found)
        return await _call(self.store, "steps")

    async def counts(self) -> dict[str, int]:
        return await _call(self.store, "counts") if self.store is not None else {}

    # ------------------------------------------------------------------ a step
    async def step(self, step: int) -> dict[str, Any]:
        """The step's rollout records (from the step record, else from the store), each with its store state
        (`attempts`, `worker`, `duration_s`, `error`, `task`) where a store is at hand; and its samples."""
        record = records.read_step(self.folder, step) if self.folder else None
        rows: list[dict[str, Any]] = list(record["rollouts"]) if record else []
        if not rows and self.store is not None:
            rows = [{"rollout_id": r.rollout_id, "data_id": r.metadata.get("data_id"), "group": None,
                     "status": r.status, "reward": None, "turns": None, "tokens": None, "in_update": None,
                     "why_not": "no step record (the store alone): see the rollout page"}
                    for r in await _call(self.store, "step_rollouts", step)]
        if self.store is not None and rows:
            ids = [r["rollout_id"] for r in rows]
            stored = await _call(self.store, "rollouts", ids)
            attempts = await _call(self.store, "attempts", ids)
            for row in rows:
                rollout, tries = stored.get(row["rollout_id"]), attempts.get(row["rollout_id"]) or []
                last = tries[-1] if tries else None
                row.update(attempts=len(tries), worker=last.worker_id if last else None,
                           error=(last.metadata.get("error") if last else None),
                           duration_s=(rollout.end_time - rollout.start_time) if rollout and rollout.end_time
                           and rollout.start_time else None,
                           task=_task_text(rollout.input) if rollout else None)
        return {"step": step, "rollouts": rows, "samples": record["samples"] if record else [],
                "recorded": record is not None}

    # ------------------------------------------------------------------ a rollout
    async def rollout(self, rollout_id: str) -> dict[str, Any]:
        """The rollout, its attempts, the latest attempt's spans (or `attempt_id`'s), its record and its samples."""
        rollout = (await _call(self.store, "rollouts", [rollout_id])).get(rollout_id) if self.store else None
        attempts = (await _call(self.store, "attempts", [rollout_id]))[rollout_id] if rollout else []
        spans = await _call(self.store, "spans", rollout_id, attempts[-1].attempt_id) if attempts else []
        version = rollout.metadata.get("policy_version") if rollout else None
        steps = [version + 1] if isinstance(version, int) else (records.step_numbers(self.folder) if self.folder
                                                                else [])
        record, samples, step = None, [], None
        for candidate in steps:
            data = records.read_step(self.folder, candidate) if self.folder else None
            found = [r for r in (data or {}).get("rollouts", []) if r["rollout_id"] == rollout_id]
            if found:
                record, step = found[0], candidate
                samples = [s for s in data["samples"] if s["rollout_id"] == rollout_id]  # type: ignore[index]
                break
        if rollout is None and record is None:
            raise KeyError(rollout_id)
        return {"rollout": rollout, "attempts": attempts, "spans": spans, "record": record, "samples": samples,
                "step": step if step is not None else (version + 1 if isinstance(version, int) else None)}

    # ------------------------------------------------------------------ tokens
    @cached_property
    def _tokenizer(self) -> Any:
        path = self._config_value("actor_rollout_ref", "model", "path")
        if not path or "${" in str(path):
            from agentlightning.models import default_model_path, is_prepared

            path = default_model_path() if is_prepared(default_model_path()) else None
        if not path:
            return None
        try:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(str(path))
        except Exception:  # noqa: BLE001 - the page then shows token ids
            return None

    def tokens(self, ids: list[int]) -> list[str]:
        """Each token id as the text it stands for (ids as `#123` when the model's tokenizer is not at hand)."""
        tokenizer = self._tokenizer
        if tokenizer is None:
            return [f"#{i}" for i in ids]
        return [tokenizer.convert_tokens_to_string([t]) for t in tokenizer.convert_ids_to_tokens(ids)]


def _task_text(task: Any) -> str:
    if isinstance(task, dict):
        for key in ("question", "prompt", "task", "input"):
            if isinstance(task.get(key), str):
                return task[key]
        return json.dumps(task, ensure_ascii=False)[:300]
    return str(task)[:300]
