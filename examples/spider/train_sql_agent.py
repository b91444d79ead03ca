"""Train the Spider SQL agent with GRPO (verl): the CPU preset on the embedded default model, or the GPU preset.

    python examples/spider/train_sql_agent.py                          # configs/spider.yaml, cpu preset, mini-Spider
    python examples/spider/train_sql_agent.py trainer.total_training_steps=20 spider.val_size=8   # any Hydra override
    python examples/spider/train_sql_agent.py spider.data_dir=/data/spider        # the real Spider release
    python examples/spider/train_sql_agent.py --cfg job                # print the composed config
    python examples/spider/train_sql_agent.py preset=gpu spider.data_dir=/data/spider \\
        agentlightning.adapter.agent_match='write_query|rewrite_query'  # Qwen2.5-Coder-1.5B-Instruct, GPU settings

The same as `python -m agentlightning.verl --config-name spider [overrides]` (agentlightning/verl/entry.py): Spider
examples become tasks `{id, question, query, db_id, db_dir}` (`sql_agent.spider_split_tasks` over the `spider:`
block), and each step runners play `rollout.n` episodes per task — `SQLAgent` (examples/spider/sql_agent.py:
LangGraph write_query → execute_query → check_query → rewrite_query ...) talks to the policy through the LLM proxy,
runs its SQL on a read-only copy of the database, and is rewarded 1/0 by execution match against the gold query (as
the official evaluation scores it); the proxy's token IDs become a verl batch (only the nodes `agent_match` selects),
verl updates the policy, and the new weights go into vLLM. Validation (greedy) runs on the val split before training
and every `trainer.test_freq` steps; the first and last are printed side by side (execution accuracy, the check's
"correct" rate, query errors, turns, errors / time-outs) and written to `held_out.json`.
"""

from __future__ import annotations

from agentlightning.verl.entry import hydra_main

__all__ = ["main"]

main = hydra_main("spider")

if __name__ == "__main__":
    main()
