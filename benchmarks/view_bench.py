"""How fast `agl view`'s pages load on a big run: 10,000 rollouts and 100,000 spans in a SQLite store, 50 step
records of 200 rollouts (two pages) and 32 trained samples each (~600 tokens), served by the real app (uvicorn,
127.0.0.1).

Where this sits: beside the loop (`agentlightning/view/`), reading what the trainer writes (store + records).
Run: .venv/bin/python benchmarks/view_bench.py [--rollouts 10000] [--spans-per-rollout 10] [--repeat 5]
Prints each page's median load time (ms, over --repeat loads, after one warm-up) with the output folder and with the
.db file alone (no records: the store's rollouts grouped by policy version).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

from agentlightning.serving import find_free_port
from agentlightning.store import SqliteLightningStore
from agentlightning.types import Attempt, Rollout, Span
from agentlightning.verl import records

__all__ = ["build_run", "main"]


def build_run(folder: Path, n_rollouts: int, spans_per: int, per_step: int = 200) -> list[str]:
    """A store and step records the size of a long run (written with SQL in bulk: the store API is not measured)."""
    db = folder / "store.db"
    asyncio.run(SqliteLightningStore(db).close())  # the schema
    rng = random.Random(0)
    ids, rollout_rows, attempt_rows, span_rows = [], [], [], []
    now = time.time()
    for k in range(n_rollouts):
        rid, aid, step = f"ro-{uuid.uuid4().hex[:12]}", f"at-{uuid.uuid4().hex[:12]}", k // per_step + 1
        ids.append(rid)
        rollout = Rollout(rollout_id=rid, input={"question": f"What is {k}+1?"}, mode="train", status="succeeded",
                          metadata={"data_id": f"t{k // 8}", "policy_version": step - 1}, start_time=now,
                          end_time=now + 5, num_attempts=1)
        rollout_rows.append((rid, "succeeded", k, rollout.model_dump_json()))
        attempt = Attempt(attempt_id=aid, rollout_id=rid, sequence_id=1, status="succeeded", worker_id="runner-0",
                          end_time=now + 5)
        attempt_rows.append((aid, rid, 1, spans_per, attempt.model_dump_json()))
        for s in range(spans_per):
            span = Span(rollout_id=rid, attempt_id=aid, sequence_id=s + 1, span_id=f"{s:016x}",
                        name="llm.call" if s % 3 == 0 else "agentlightning.agent", start_time=now + s * 0.1,
                        end_time=now + s * 0.1 + 0.05, attributes={
                            "request": {"messages": [{"role": "user", "content": f"What is {k}+1?"}]},
                            "response": {"text": f"{k + 1}"}, "prompt_token_ids": list(range(200)),
                            "response_token_ids": list(range(40))} if s % 3 == 0 else {"agent_name": "solver"})
            span_rows.append((rid, aid, s + 1, span.model_dump_json(), span.span_id))
    with sqlite3.connect(db) as conn:
        conn.executemany("INSERT INTO rollouts VALUES (?, ?, ?, ?)", rollout_rows)
        conn.executemany("INSERT INTO attempts VALUES (?, ?, ?, ?, ?)", attempt_rows)
        conn.executemany("INSERT INTO spans (rollout_id, attempt_id, sequence_id, data, span_id) VALUES (?, ?, ?, ?, ?)",
                         span_rows)
    (folder / "config.yaml").write_text(f"agentlightning:\n  store: {db}\n")
    metrics = [{"step": s, "accuracy": rng.random(), "reward/mean": rng.random(), "timing_s/rollout": 30.0,
                "timing_s/update": 60.0, "val/accuracy": rng.random()} for s in range(n_rollouts // per_step + 1)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    for step in range(1, n_rollouts // per_step + 1):
        chunk = ids[(step - 1) * per_step: step * per_step]
        rows = [{"rollout_id": rid, "data_id": f"t{i // 8}", "status": "succeeded", "reward": float(i % 2),
                 "turns": 1, "tokens": 40} for i, rid in enumerate(chunk)]
        samples = [{"rollout_id": rid, "turn": 0, "group": "g", "sequence_ids": [1], "prompt_ids": list(range(500)),
                    "response_ids": list(range(100)), "response_mask": [1] * 60 + [0] * 20 + [1] * 20,
                    "logprobs": [-0.5] * 100, "advantages": [0.5] * 100, "reward": 1.0, "reward_index": 99}
                   for rid in chunk[:32]]
        records.write_step(folder, step, records.mark_update(rows, samples), samples)
    return ids


def _serve(target: str, port: int) -> None:
    """The real app on uvicorn, in a thread (`agl view`'s own `serve` wants the main thread for Ctrl-C)."""
    import uvicorn

    from agentlightning.net import EmbeddedServer
    from agentlightning.view import RunSource, build_app

    server = EmbeddedServer(uvicorn.Config(build_app(RunSource(target)), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()


def _median_ms(url: str, repeat: int) -> float:
    httpx.get(url, timeout=60).raise_for_status()  # warm-up (tokenizer, caches)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        httpx.get(url, timeout=60).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=10_000)
    parser.add_argument("--spans-per-rollout", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agl-view-bench-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        ids = build_run(folder, args.rollouts, args.spans_per_rollout)
        print(f"built {args.rollouts:,} rollouts, {args.rollouts * args.spans_per_rollout:,} spans, "
              f"{args.rollouts // 200} step records in {time.perf_counter() - started:.1f} s")
        middle = args.rollouts // 400
        for label, target in [("output folder", str(folder)), ("store file alone", str(folder / "store.db"))]:
            port = find_free_port()
            _serve(target, port)
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    httpx.get(base + "/health", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            pages = {"run page /": "/", f"step page /step/{middle}": f"/step/{middle}",
                     f"step page 2 /step/{middle}?page=2": f"/step/{middle}?page=2",
                     "rollout page (with samples)": f"/rollout/{ids[(middle - 1) * 200]}"}
            for name, path in pages.items():
                print(f"{label:17s} {name:34s} {_median_ms(base + path, args.repeat):8.1f} ms")


if __name__ == "__main__":
    main()
