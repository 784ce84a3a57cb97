# Set-up, as README opens with it (each target installs what it needs into .venv first):
#   make install   creates .venv: torch, timm, scikit-learn, ... and this package (editable)
#   make test      runs the whole test suite
#   make demo      runs the main job on the embedded default
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch and torchvision are pinned here (not in pyproject.toml, which declares ordinary
# ranges) to the releases this project is developed and tested with.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: install demo test lint clean default-generator likelihood-default default-study

$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/igpt-forensics demo

test: $(STAMP)
	$(BIN)/python -m pytest tests

lint: $(STAMP)
	$(BIN)/ruff check igpt_forensics generators detectors tests benchmarks

clean:
	rm -rf $(VENV)

# Reproduces the bundled default generator (igpt_forensics/assets/default-generator):
# the palette step is what train-generator does itself without --palette; it is split out
# here only so that it can be checked on its own (its sha256 is in config.json).
default-generator: $(STAMP)
	$(BIN)/igpt-forensics palette fit --data builtin --colors 512 --size 32 --n 20000 --seed 0 --out runs/palette-512.json
	$(BIN)/igpt-forensics train-generator --out runs/default-gen --data builtin --size 32 --colors 512 --palette runs/palette-512.json --preset mini --steps 300 --batch-size 8 --lr 3e-3 --warmup 30 --eval-every 100 --eval-patches 128 --checkpoint-every 25 --seed 0
	$(BIN)/igpt-forensics export-model runs/default-gen igpt_forensics/assets/default-generator --half

# Reproduces the shipped calibration of the likelihood detector for the bundled generator
# (igpt_forensics/assets/likelihood-default): real patches of the val photo, self-drawn samples.
likelihood-default: $(STAMP)
	$(BIN)/igpt-forensics calibrate --detector likelihood --data builtin --out igpt_forensics/assets/likelihood-default

# The default study of README (datasets are made first; runs/default-study/report/report.html).
default-study: $(STAMP)
	$(BIN)/igpt-forensics bench --config studies/default.toml
