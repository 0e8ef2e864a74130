# dermaudit: `make setup` once, then `make report`.
#   make report DATA_ROOT=../shared/data/ham10000-small PARAMS=params/cpu-real.yaml
#   make chapter CHAPTER=robustness PARAMS=params/my-eval.yaml
#   make report EVAL_ROOT=/path/to/other/clinic     (evaluate on an external test set)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

PARAMS ?=
OUTPUT_DIR ?= output
DATA_ROOT ?=
EVAL_ROOT ?=
CHAPTER ?=
RENDERER ?= auto

# `make report` defaults to params/default.yaml; `make chapter` without PARAMS keeps the last run's params.
RUN_ARGS = --output-dir $(OUTPUT_DIR) --renderer $(RENDERER) \
	$(if $(DATA_ROOT),--data-root $(DATA_ROOT)) $(if $(EVAL_ROOT),--eval-root $(EVAL_ROOT))

.PHONY: setup report chapter render test clean help

help:
	@echo "make setup                      create .venv and install dermaudit and its dependencies"
	@echo "make report                     run all four chapters and render output/report/report.{html,pdf}"
	@echo "make chapter CHAPTER=NAME       re-run one chapter (training, robustness, calibration, cases) and render"
	@echo "make render                     render the report from the executed notebooks"
	@echo "make test                       run the test suite"
	@echo "make clean                      remove output/"
	@echo "Variables: PARAMS (report default: params/default.yaml), DATA_ROOT, EVAL_ROOT, OUTPUT_DIR (default: output)"

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

report: $(STAMP)
	$(PY) -m dermaudit report --params $(or $(PARAMS),params/default.yaml) $(RUN_ARGS)

chapter: $(STAMP)
	@test -n "$(CHAPTER)" || { echo "set CHAPTER to one of: training robustness calibration cases"; exit 2; }
	$(PY) -m dermaudit chapter $(CHAPTER) $(if $(PARAMS),--params $(PARAMS)) $(RUN_ARGS)

render: $(STAMP)
	$(PY) -m dermaudit render --output-dir $(OUTPUT_DIR) --renderer $(RENDERER)

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(OUTPUT_DIR)
