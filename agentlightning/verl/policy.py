"""The policy a training loop drives: where it is served, how it is updated, how new weights reach the servers.

Where this sits: `VerlAlgorithm`'s loop (rollouts → adapter → batch) calls a `Policy` for the rest:
**serving endpoints → (rollouts) → release → PPO/GRPO step → checkpoint → new weights into the servers**.

Two implementations, chosen by `trainer.device`, one loop:
- `CPUPolicy` (`cpu`): verl's workers in this process (`InProcessPPO`), one vLLM server we start (`VLLMServer`, CPU
  build), weights pushed through tmpfs + reload (`VLLMWeightSync`).
- `agentlightning.verl.ray_policy.RayPPOPolicy` (`cuda`): verl's `RayPPOTrainer` worker groups, its vLLM rollout
  replicas and its checkpoint engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig

__all__ = ["CPUPolicy", "Policy", "SERVED_NAME"]

SERVED_NAME = "policy"


class Policy(Protocol):
    """What the training loop needs from a policy (all blocking; the loop calls them from a worker thread)."""

    global_steps: int

    @property
    def served_model(self) -> str: ...

    def base_urls(self) -> list[str]: ...

    def start(self, step: int) -> dict[str, float]: ...

    def release_rollout(self) -> None: ...

    def step(self, batch: Any) -> dict[str, float]: ...

    def push_weights(self, step: int) -> dict[str, float]: ...

    def save_checkpoint(self, folder: str | Path, step: int, max_to_keep: int | None = None) -> None: ...

    def load_checkpoint(self, folder: str | Path) -> None: ...

    def close(self) -> None: ...


class CPUPolicy:
    """verl's in-process workers + one vLLM server (`--served-model-name policy`, dev mode for weight reloads) +
    `VLLMWeightSync`. `vllm`: the `agentlightning.vllm` config block (max_model_len, extra_args, startup_timeout_s);
    `log_path`: the server's log file."""

    def __init__(self, config: DictConfig, credit_assignment: str, normalize_turns: bool, vllm: dict[str, Any],
                 log_path: str | Path) -> None:
        from agentlightning.serving.vllm_server import VLLMServer
        from agentlightning.verl.actor import InProcessPPO
        from agentlightning.verl.weight_sync import DEV_MODE_ENV

        self.actor = InProcessPPO(config, credit_assignment, normalize_turns)
        extra = [str(a) for a in vllm.get("extra_args", [])]
        if not any(a.startswith("--logprobs-mode") for a in extra):
            # logprobs after temperature scaling, as verl's own replicas report them and as verl's actor computes
            # them: π_old in bypass mode must be the distribution the tokens were sampled from
            extra += ["--logprobs-mode", str(config.actor_rollout_ref.rollout.get("logprobs_mode", "processed_logprobs"))]
        self.server = VLLMServer(config.actor_rollout_ref.model.path, served_model_name=SERVED_NAME,
                                 env=DEV_MODE_ENV, startup_timeout=float(vllm.get("startup_timeout_s", 300)),
                                 log_path=log_path,
                                 extra_args=["--max-model-len", str(vllm.get("max_model_len", 2048)), *extra])
        self.sync: Any = None

    @property
    def global_steps(self) -> int:
        return self.actor.global_steps

    @global_steps.setter
    def global_steps(self, value: int) -> None:
        self.actor.global_steps = value

    @property
    def served_model(self) -> str:
        return SERVED_NAME

    def base_urls(self) -> list[str]:
        return [self.server.base_url]

    def start(self, step: int) -> dict[str, float]:
        """Start the vLLM server; when resuming (step > 0) push the resumed weights over the base model it loaded."""
        from agentlightning.verl.weight_sync import VLLMWeightSync, torch_dtype

        self.actor.global_steps = step
        self.server.start()
        self.sync = VLLMWeightSync(self.server.url, model_path=self.server.model, dtype=torch_dtype(self.server.dtype))
        return self.push_weights(step) if step > 0 else {}

    def release_rollout(self) -> None:
        """Nothing to free: on CPU the server and the trainer share RAM, not a GPU."""

    def step(self, batch: Any) -> dict[str, float]:
        return self.actor.step(batch)

    def push_weights(self, step: int) -> dict[str, float]:
        return self.sync.push(self.actor.hf_state_dict(), version=step)

    def save_checkpoint(self, folder: str | Path, step: int, max_to_keep: int | None = None) -> None:
        self.actor.save_checkpoint(folder, step, max_to_keep)

    def load_checkpoint(self, folder: str | Path) -> None:
        self.actor.load_checkpoint(folder)

    def close(self) -> None:
        self.server.stop()
        if self.sync is not None:
            self.sync.close()
