# `make run` and `make test` set everything up on a fresh Debian/Ubuntu machine.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test bench cluster setup system clean

run: setup
	$(VENV)/bin/voicebot prompts build --quiet
	$(VENV)/bin/voicebot run

test: setup
	$(VENV)/bin/python -m pytest -q

# Kamailio and 3 `voicebot serve` on loopback (Ctrl-C stops all); options: make cluster ARGS="--instances 2 --no-speech"
cluster: setup
	$(VENV)/bin/python scripts/cluster $(ARGS)

bench: setup
	@scripts/system-packages bench
	$(VENV)/bin/python bench/run.py

setup: system $(STAMP)

system:
	@scripts/system-packages

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) var .pytest_cache
