# `make run` and `make test` set everything up on a fresh Debian/Ubuntu machine.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test bench setup system clean

run: setup
	$(VENV)/bin/voicebot prompts build --quiet
	$(VENV)/bin/voicebot run

test: setup
	$(VENV)/bin/python -m pytest -q

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
