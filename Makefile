# `make demo` and `make test` each set up everything from a fresh clone:
# a virtual environment in .venv with the project and its CPU extra installed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# One name for every step of the demo, even across a second boundary.
NOW := $(shell date +%Y%m%d-%H%M%S)
DEMO_NAME ?= quickstart-$(NOW)

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[cpu,test]"
	touch $(STAMP)

data/synth/Images: | $(STAMP)
	$(BIN)/scenetune data synth data/synth --classes 6 --per-class 60 --size 64 --seed 0

demo: $(STAMP) data/synth/Images
	$(BIN)/scenetune sweep sweeps/quickstart.yaml --name $(DEMO_NAME)
	$(BIN)/scenetune best results/$(DEMO_NAME) --top 3
	$(BIN)/scenetune evaluate results/$(DEMO_NAME)
	$(BIN)/scenetune report results/$(DEMO_NAME)

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) data/synth results
