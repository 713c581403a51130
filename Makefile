# Build / dev skeleton for raftkit.
# Every target bootstraps .venv on first use (fresh clone needs only python3 + PyPI access).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Extra args for `jupyter lab`; Jupyter refuses to run as root without --allow-root
# (e.g. in containers), so add it automatically only when uid is 0.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: all venv check lint test lab bench notebooks clean

all: test

venv: $(STAMP)

# Create the virtualenv itself (only once).
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# (Re)install the project + extras whenever pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[lab,test]'
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check raftkit tests benchmarks

# The fast tier, after every edit: lint, unit tests and scenario suites on two
# workers; no notebooks, no grading workers, no browser (the `slow` mark).
check: lint
	$(BIN)/python -m pytest tests -m "not slow" -n 2

# Everything: lint, every test, every notebook's outputs compared strictly (nbval).
test: lint
	$(BIN)/python -m pytest --nbval

# Re-execute every notebook and solution in place (after a change to what they print).
notebooks: $(STAMP)
	$(BIN)/python -m tests.refresh_notebooks notebooks/*.ipynb solutions/*.ipynb

# Opens the course at its first notebook; the file browser shows notebooks/, exercises/, solutions/.
lab: $(STAMP)
	$(BIN)/jupyter lab $(LAB_ARGS) --ServerApp.root_dir=$(CURDIR) --ServerApp.default_url=/lab/tree/notebooks/00-quickstart.ipynb

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist .pytest_cache
	find . -path ./.git -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints -o -name "*.egg-info" \) -type d -prune -exec rm -rf {} +
