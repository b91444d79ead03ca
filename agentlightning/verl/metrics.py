"""Per-step training metrics to JSONL and TensorBoard, and the reward curve PNG.

Where this sits: beside the loop. `VerlAlgorithm` logs one dict per step (step 0 = validation before training):
reward mean/std, accuracy, response length, turns, pg loss, KL, entropy, grad norm, and the timing split
(`timing_s/rollout`, `adapter`, `update`, `weight_sync`, `step`). Files: `<output_dir>/metrics.jsonl` (one JSON
object per line, appended on resume), `<output_dir>/tensorboard/` (TensorBoard scalars), `reward_curve.png`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from pathlib import Path
from typing import Any

__all__ = ["MetricsLogger", "plot_reward_curve"]

logger = logging.getLogger(__name__)


class MetricsLogger:
    """Appends `{"step": N, ...}` lines to metrics.jsonl and writes the same scalars to TensorBoard."""

    def __init__(self, output_dir: str | Path, resume: bool = False) -> None:
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.output_dir / "metrics.jsonl"
        self._file = open(self.path, "a" if resume else "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._tb: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.output_dir / "tensorboard"))
        except Exception as exc:  # noqa: BLE001 - TensorBoard is optional; JSONL is always written
            logger.warning("TensorBoard disabled (%s); metrics still go to %s", exc, self.path)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not metrics:
            return
        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(float(v))}
        self._file.write(json.dumps({"step": step, **clean}) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in clean.items():
                self._tb.add_scalar(key, value, step)
            self._tb.flush()

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            with contextlib.suppress(Exception):
                self._tb.close()


def plot_reward_curve(metrics_path: str | Path, png_path: str | Path) -> Path | None:
    """Draw train reward mean (± std) and validation reward per step from metrics.jsonl; None when nothing to draw."""
    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    train = [(r["step"], r["reward/mean"], r.get("reward/std", 0.0)) for r in rows if "reward/mean" in r]
    val = [(r["step"], r["val/reward/mean"]) for r in rows if "val/reward/mean" in r]
    if not train and not val:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        steps, mean, std = zip(*train, strict=True)
        ax.plot(steps, mean, marker="o", label="train reward (mean)")
        ax.fill_between(steps, [m - s for m, s in zip(mean, std, strict=True)],
                        [m + s for m, s in zip(mean, std, strict=True)], alpha=0.2, label="± std")
    if val:
        ax.plot(*zip(*val, strict=True), marker="s", linestyle="--", label="validation reward")
    ax.set_xlabel("training step")
    ax.set_ylabel("reward")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return Path(png_path)
