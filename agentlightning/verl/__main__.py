"""`python -m agentlightning.verl [--config-name NAME] [Hydra overrides...]`: train the agent a config names.

Where this sits: the command line of `agentlightning.verl.entry.train` (config → agent + tasks → `Trainer` →
`VerlAlgorithm.fit` → held-out table). `--config-name` picks `configs/NAME.yaml` (default `agentlightning`, the
generic config: set `agentlightning.agent` and `agentlightning.train_data`); `--cfg job` prints the composed config.

    python -m agentlightning.verl --config-name calc_x trainer.total_training_steps=20
    python -m agentlightning.verl agentlightning.agent=my_pkg.agent:solve agentlightning.train_data=tasks.jsonl
"""

from __future__ import annotations

from agentlightning.verl.entry import hydra_main

__all__: list[str] = []

if __name__ == "__main__":
    hydra_main("agentlightning")()
