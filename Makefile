# Two commands: `make demo` and `make test`. Both set themselves up on a fresh machine:
# a .venv with the pinned packages, and Fashion-MNIST from Debian's package where apt
# exists (elsewhere torchvision downloads it on first use). Set-up is a no-op when done.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.awsaa-installed
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
# The test suites' pytest-xdist worker processes: one per core, at most 4 (0: all in one process).
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n < 4 ? n : 4 )))
XDIST = -n $(TEST_WORKERS) --dist worksteal

# Python's default: each module's bytecode is cached on its first import. Where the
# environment sets PYTHONDONTWRITEBYTECODE (this machine does), nothing is ever cached and
# every process these targets start (each Ray worker among them) compiles torch and Ray from
# source again: 7.6 s of CPU to import awsaa instead of 4.5 s; the fault suite took 641 s
# instead of 328 s. Caching only what is imported costs less than compiling every installed
# file up front (about 65 s on 2 cores).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup data demo demo-fmnist gallery schemas gpu-check test test-faults test-slow test-long test-all lint bench clean

setup: $(STAMP)

# tools/install.py: uv where it can be installed (57 s from nothing here, 29 s with uv's
# cache), pip otherwise (123 s).
$(STAMP): pyproject.toml tools/install.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing awsaa and its pinned dependencies into $(VENV) (first time: a minute or a few)"
	@$(BIN)/python tools/install.py
	@$(BIN)/python -c "import awsaa, torch, torchvision, ray" || { echo "setup failed"; exit 1; }
	@touch $@

data: setup
	@if [ ! -f $(FMNIST) ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's dataset-fashion-mnist"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	fi
	@if [ ! -f $(FMNIST) ]; then \
		$(BIN)/python -c "from awsaa.data import load_dataset; load_dataset('fashion_mnist', download=True)"; \
	fi

# The product's job in one command: a search on digits (where augmentation helps), then its
# policy trained beside `none` and `uniform`, 3 seeds each, ending with one ranking line.
demo: setup data
	@name=digits-$$(date +%Y%m%d-%H%M%S); \
	$(BIN)/awsaa-search -c configs/search/demo_digits.yaml --storage runs/demo --name $$name && \
	$(BIN)/awsaa-train -c configs/train/digits.yaml --aug none uniform runs/demo/$$name/policy.json \
	    --seeds 0 1 2 --cpus-per-trial 1 --storage runs/demo/train --name $$name

# The earlier demo: a density search on Fashion-MNIST (a regime where augmentation costs accuracy).
demo-fmnist: setup data
	@$(BIN)/awsaa-search -c configs/search/demo_fmnist.yaml --storage runs/demo

gallery: setup data
	@$(BIN)/awsaa-policy gallery --download -o runs/demo/ops.png

# Everything that only runs on a GPU, in about 5 minutes, as one table (BENCHMARKS.md);
# on a machine without CUDA it says so and exits 0.
gpu-check: setup
	@$(BIN)/python benchmarks/gpu_check.py

# The configs' JSON schemas, for editors (tests/test_config.py checks they are current).
schemas: setup
	@$(BIN)/awsaa-search --print-schema > configs/schema/search.schema.json
	@$(BIN)/awsaa-train --print-schema > configs/schema/train.schema.json

lint: setup
	@$(BIN)/ruff check .
	@out=$$($(BIN)/lint-imports --no-cache 2>&1) || { echo "$$out"; exit 1; }; echo "$$out" | grep "^Contracts:"
	@$(BIN)/mypy

# The fast suite, spread over the cores (a test that is slow waits for none behind it). The
# fault suite (-m faults) and the multi-node cluster tests (-m slow) have their own targets,
# spread over the cores too: each test waits on its own markers, never on the clock, and
# each xdist worker has its own local Ray and fault plan. `test-long` runs both in one
# session: the cluster test, the longest, then runs beside fault tests instead of alone at
# the end (RELIABILITY.md: 764 s one after the other, 564 s together). `test-all` runs all
# three in one session: 945 s in pytest against 907 s (320 + 587) for `test` then `test-long`
# (the same day, idle): the long tests then run beside the fast suite's CPU-bound ones.
test: setup data lint
	@$(BIN)/python -m pytest -q -m "not slow and not faults" $(XDIST) $(PYTEST_ARGS)

test-faults: setup data
	@$(BIN)/python -m pytest -q -m faults $(XDIST) $(PYTEST_ARGS)

test-slow: setup data
	@$(BIN)/python -m pytest -q -m slow $(XDIST) $(PYTEST_ARGS)

test-long: setup data
	@$(BIN)/python -m pytest -q -m "faults or slow" $(XDIST) $(PYTEST_ARGS)

test-all: setup data lint
	@$(BIN)/python -m pytest -q $(XDIST) $(PYTEST_ARGS)

bench: setup data
	@$(BIN)/python benchmarks/augment.py
	@$(BIN)/python benchmarks/train.py
	@$(BIN)/python benchmarks/search.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
