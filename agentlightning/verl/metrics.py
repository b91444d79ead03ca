"""Per-step training metrics: `metrics.jsonl` always, and verl's own tracking (`trainer.logger`: console,
tensorboard, wandb, mlflow, swanlab, ...); the held-out before/after table; the accuracy curve PNG.

Where this sits: beside the loop. `VerlAlgorithm` logs one dict per step (step 0 = validation before training):
reward mean/std, accuracy, response length, turns, pg loss, KL, entropy, grad norm, the timing split
(`timing_s/rollout`, `adapter`, `update`, `weight_sync`, `step`) and, on validation steps, `val/...`. Files under
`agentlightning.output_dir`: `metrics.jsonl` (one JSON object per line, appended on resume; the benchmarks read it),
`tensorboard/` (with `tensorboard` in `trainer.logger`, unless `TENSORBOARD_DIR` is set), `wandb/` (W&B's files,
unless `WANDB_DIR` is set), `reward_curve.png`. `held_out_table` prints the first and last validation side by side:
the table every training script shows.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["MetricsLogger", "check_loggers", "held_out", "held_out_table", "plot_reward_curve"]

logger = logging.getLogger(__name__)

# verl.utils.tracking.Tracking.supported_backend (verl 0.9.1; a test keeps them equal) and the module each imports;
# listed here so that checking a config does not import verl
_BACKEND_MODULES = {"wandb": "wandb", "mlflow": "mlflow", "swanlab": "swanlab", "vemlp_wandb": "volcengine_ml_platform",
                    "tensorboard": "tensorboard", "console": None, "clearml": "clearml", "trackio": "trackio",
                    "file": None, "rl_insight": "rl_insight"}


def check_loggers(names: Sequence[str]) -> None:
    """Raise ValueError (what/why/fix) for a `trainer.logger` entry verl's tracking does not know, or whose package
    is not installed; returns quietly for a usable list."""
    for name in names:
        if name not in _BACKEND_MODULES:
            raise ValueError(f"trainer.logger={list(names)}: {name!r} is not one of verl's tracking backends "
                             f"{list(_BACKEND_MODULES)}. Fix: e.g. trainer.logger=[console,tensorboard]")
        module = _BACKEND_MODULES.get(name)
        if module is not None and importlib.util.find_spec(module) is None:
            raise ValueError(f"trainer.logger={list(names)}: the {name!r} backend needs the {module!r} package, which "
                             f"is not installed. Fix: .venv/bin/pip install {module.replace('_', '-')}, or drop "
                             f"{name!r} from trainer.logger")


@contextlib.contextmanager
def _default_env(defaults: dict[str, str]) -> Iterator[None]:
    """Set environment variables the user has not set, for the duration of the block only."""
    added = [k for k in defaults if k not in os.environ]
    os.environ.update({k: defaults[k] for k in added})
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


class MetricsLogger:
    """Appends `{"step": N, ...}` lines to metrics.jsonl and sends the same scalars to verl's `Tracking` with the
    `backends` of `trainer.logger` (TensorBoard and W&B files default to the output folder)."""

    def __init__(self, output_dir: str | Path, resume: bool = False, backends: Sequence[str] = (),
                 project: str = "agentlightning", experiment: str = "run", config: dict[str, Any] | None = None
                 ) -> None:
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.output_dir / "metrics.jsonl"
        self._file = open(self.path, "a" if resume else "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.tracking: Any = None
        self._wandb = False
        if backends:
            check_loggers(list(backends))
            from verl.utils.tracking import Tracking

            self._wandb = "wandb" in backends
            if self._wandb:
                _reset_wandb()  # W&B keeps the settings of its first run in a process (WANDB_DIR included)
            with _default_env({"TENSORBOARD_DIR": str(self.output_dir / "tensorboard"),
                               "WANDB_DIR": str(self.output_dir)}):
                self.tracking = Tracking(project, experiment, list(backends), config)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not metrics:
            return
        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(float(v))}
        self._file.write(json.dumps({"step": step, **clean}) + "\n")
        self._file.flush()
        if self.tracking is not None:
            self.tracking.log(clean, step)

    def close(self) -> None:
        self._file.close()
        if self.tracking is not None:
            self.tracking.finish()
        if self._wandb:
            _reset_wandb()


def _reset_wandb() -> None:
    """Forget W&B's process-wide settings (its next run reads WANDB_DIR and the rest again); no-op during a run."""
    import wandb

    if wandb.run is None:
        wandb.teardown()


def held_out(history: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """The first and the last validation of a run (`val/...` metrics, prefix removed) as {"before", "after"}, each
    with `tokens/mean` (response tokens per episode) and `episodes` added; {} when the run validated fewer than once."""
    rows = [r for r in history if "val/rollout/count" in r]
    if not rows:
        return {}

    def clean(row: dict[str, float]) -> dict[str, float]:
        out = {k.removeprefix("val/"): float(v) for k, v in row.items() if k.startswith("val/")}
        episodes = out.get("rollout/count", 0.0)
        out["episodes"] = episodes
        out["tokens/mean"] = out.get("rollout/completion_tokens", 0.0) / max(1.0, episodes)
        out["step"] = float(row.get("step", 0))
        out["weights_step"] = float(row.get("select/restored_step", out["step"]))  # checkpoint selection restored
        return out

    return {"before": clean(rows[0]), "after": clean(rows[-1])}


def held_out_table(result: dict[str, dict[str, float]], title: str = "held-out") -> str:
    """`held_out`'s result as a table: accuracy (overall and per group), reward, turns, tokens, the agent's own
    metrics (`agent/...`, from `emit_metrics`), failed rollouts; before, after and the change."""
    before, after = result["before"], result["after"]
    keys = ["accuracy"] + sorted(k for k in after if k.startswith("accuracy/"))
    keys += ["reward/mean", "turns/mean", "tokens/mean"] + sorted(k for k in after if k.startswith("agent/"))
    head = f"step {before['step']:.0f} -> {after['step']:.0f}"
    if after.get("weights_step", after["step"]) != after["step"]:
        head += f", the weights of step {after['weights_step']:.0f}: best on the selection split"
    rows = [f"{title:<26} {'before':>8} {'after':>8} {'change':>8}   ({head})"]
    for key in keys:
        b, a = before.get(key, 0.0), after.get(key, 0.0)
        rows.append(f"{key:<26} {b:>8.3f} {a:>8.3f} {a - b:>+8.3f}")
    for key in ["episodes", "rollout/failed"] + sorted(k for k in after if k.startswith("episodes/")):
        rows.append(f"{key:<26} {before.get(key, 0.0):>8.0f} {after.get(key, 0.0):>8.0f}")
    return "\n".join(rows)


def _rolling(values: Sequence[float], window: int = 3) -> list[float]:
    return [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
            for i in range(len(values))]


def plot_reward_curve(metrics_path: str | Path, png_path: str | Path) -> Path | None:
    """Draw from metrics.jsonl: training accuracy per step (the share of episodes rewarded) with a rolling mean of 3,
    validation accuracy (overall and per group, e.g. difficulty), and the samples each update trained on. None when
    there is nothing to draw."""
    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    train = [(r["step"], r["accuracy"]) for r in rows if "accuracy" in r and "timing_s/step" in r]
    val = [r for r in rows if "val/accuracy" in r]
    if not train and not val:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=[3, 1])
    if train:
        steps, accuracy = zip(*train, strict=True)
        ax.plot(steps, accuracy, "o", alpha=0.4, label="train accuracy (episodes rewarded)")
        ax.plot(steps, _rolling(accuracy), "-", label="train accuracy, rolling mean of 3")
    if val:
        ax.plot([r["step"] for r in val], [r["val/accuracy"] for r in val], "s--", color="black",
                label="validation accuracy")
        for key in sorted({k for r in val for k in r if k.startswith("val/accuracy/")}):
            points = [(r["step"], r[key]) for r in val if key in r]
            ax.plot(*zip(*points, strict=True), "^:", alpha=0.7, label=f"validation {key.split('/', 2)[2]}")
    select = [(r["step"], r["select/accuracy"]) for r in rows if "select/accuracy" in r]
    if select:
        ax.plot(*zip(*select, strict=True), "D-.", color="tab:purple", alpha=0.8,
                label="selection split accuracy (held out of training)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    updates = [(r["step"], 0 if r.get("batch/update_skipped") else r.get("batch/num_samples", 0)
                - r.get("batch/samples_filtered", 0) - r.get("batch/dropped_for_mini_batches", 0))
               for r in rows if "timing_s/step" in r]
    if updates:
        bottom.bar(*zip(*updates, strict=True), color="tab:gray")
    bottom.set_ylabel("samples trained")
    bottom.set_xlabel("training step")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return Path(png_path)
