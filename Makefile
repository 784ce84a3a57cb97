# Two set-up commands, each installs what it needs into .venv first:
#   make demo   runs the main job on the embedded default
#   make test   runs the whole test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch and torchvision are pinned here (not in pyproject.toml, which declares ordinary
# ranges) to the releases this project is developed and tested with.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/igpt-forensics info

test: $(STAMP)
	$(BIN)/python -m pytest tests

lint: $(STAMP)
	$(BIN)/ruff check igpt_forensics generators detectors tests benchmarks

clean:
	rm -rf $(VENV)
