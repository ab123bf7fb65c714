# Quick start: `make demo` and `make test`. Both create .venv and install on first use only.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-examples lint bench bench-quick clean

$(STAMP): requirements.txt setup.py
	test -d $(VENV) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tfkd demo --overwrite

test: $(STAMP)
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile -q -m "not slow" tests

test-slow: $(STAMP)
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile -q -m slow tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy tfkd

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/run_all.py

bench-quick: $(STAMP)
	$(VENV)/bin/python benchmarks/run_all.py --quick

test-examples: $(STAMP)
	$(VENV)/bin/python -m pytest -p no:xdist -q -m examples tests/test_notebooks.py

clean:
	rm -rf $(VENV) tfkd-demo .pytest_cache
