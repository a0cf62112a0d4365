# Set-up is implicit: every target creates .venv and installs the project if needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: run demo exchange test bench bench-components faults mutate drills lint install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install            ## live Binance (wss://stream.binance.com:9443)
	$(BIN)/binance-live $(ARGS)

demo: install           ## the bundled local exchange, no network needed
	$(BIN)/binance-live --demo $(ARGS)

exchange: install       ## the local exchange alone, e.g. make exchange ARGS="--port 9443"
	$(BIN)/binance-live-exchange $(ARGS)

# The suite with branch coverage; then coverage per package and the engine/ floor (90 % lines).
test: install-test
	$(BIN)/python -m pytest -q --cov --cov-report= --cov-report=json:coverage.json
	$(BIN)/python tests/quality/coverage_gate.py coverage.json

# Mutation testing of the core modules ([tool.mutmut] in pyproject.toml) against their fast
# unit tests, from scratch (renumbered mutants can keep stale verdicts), bounded by
# MUTATE_TIMEOUT; then the score per module (target 90 %). Progress goes to mutants.log.
MUTATE_TIMEOUT ?= 2400
mutate: install-test
	rm -rf mutants
	BINANCE_LIVE_SHARED=$(abspath ..)/shared timeout $(MUTATE_TIMEOUT) \
	  $(BIN)/mutmut run --max-children 2 > mutants.log 2>&1; tail -c 400 mutants.log | tr '\r' '\n' | tail -3
	$(BIN)/python tests/quality/mutation_score.py

# Bug drills: each tests/drills/*.patch plants a bug that once passed the suite; its tests must fail.
drills: install-test
	$(BIN)/python tests/drills/run_drills.py

# The suite (engine vs raw limit vs peer libraries; peers go into bench/.venv-peers, never
# into .venv): ~9 minutes on 2 cores. MEMORY_SECONDS: the RSS row at 10k msg/s, run beside
# the callgrind instructions/msg (the time that takes); a 10-minute memory run
# (MEMORY_SECONDS=600) does not fit the 10-minute budget of `make bench`.
MEMORY_SECONDS ?= 90
bench: install-test
	$(BIN)/python bench/suite.py --peers-setup --memory-seconds $(MEMORY_SECONDS)

bench-components: install-test  ## the older per-component benches, and engine (d) without sockets
	$(BIN)/python bench/pipeline.py --repeat 5
	$(BIN)/python bench/bus_throughput.py
	$(BIN)/python bench/recorder.py
	$(BIN)/python bench/tui_under_load.py
	$(BIN)/python bench/book.py

faults: install-test    ## fault matrix: a real recorder under each fault (ARGS="--quick" for short)
	$(BIN)/python bench/faults.py $(ARGS)

lint: install-test      ## ruff over everything, mypy over engine/ (the exchange included) and tui/
	$(BIN)/ruff check engine tui tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache
