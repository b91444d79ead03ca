"""Train the calc_x calculator agent with GRPO (verl) on the embedded default model — the main demo.

    python examples/calc_x/train_calc_agent.py                          # configs/calc_x.yaml, cpu preset
    python examples/calc_x/train_calc_agent.py trainer.total_training_steps=20 data.train_batch_size=8 \\
        actor_rollout_ref.rollout.n=4                                   # any Hydra override
    python examples/calc_x/train_calc_agent.py --cfg job                # print the composed config
    python examples/calc_x/train_calc_agent.py preset=gpu               # Qwen2.5-1.5B-Instruct hyperparameters

The same as `python -m agentlightning.verl --config-name calc_x [overrides]` (agentlightning/verl/entry.py): verl's
RayPPOTrainer (FSDP ranks and vLLM rollout replicas on a local Ray, on CPU too) trains `CalcXAgent`
(examples/calc_x/agent.py) — each step runners play `rollout.n` episodes per task, the agent talks to the policy
through the LLM proxy, calls the MCP calculator, answers `### ANSWER: n ###` and is rewarded 1/0; the proxy's token
IDs become a verl batch, verl updates the policy, and verl's weight sync puts the new weights into the replicas.
Validation (greedy) runs on the test split before training and every `trainer.test_freq` steps; the first and last
are printed side by side (accuracy overall and per difficulty, reward, turns, tokens, format and tool-call rates)
and written to `held_out.json`, next to `reward_curve.png`, `metrics.jsonl` and the `trainer.logger` outputs.
"""

from __future__ import annotations

from agentlightning.verl.entry import hydra_main

__all__ = ["main"]

main = hydra_main("calc_x")

if __name__ == "__main__":
    main()
