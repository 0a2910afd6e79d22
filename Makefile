# `make train` and `make test` work on a fresh machine: each creates the venv when it is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= $(abspath ../shared)
# MediaPipe's bundle: taken from ../shared when it is there (developers, CI); users set FACEDYN_LANDMARKER
# or let facedyn download it on first use.
ifneq ($(wildcard $(SHARED)/models/face_landmarker.task),)
export FACEDYN_LANDMARKER ?= $(SHARED)/models/face_landmarker.task
endif

.PHONY: venv venv-dev venv-docs train test test-all bench docs
# Three layers in one venv: what facedyn needs to run, then the tests' and benchmarks', then the docs'.
venv: $(VENV)/.installed
venv-dev: $(VENV)/.installed-dev
venv-docs: $(VENV)/.installed-docs

$(VENV)/.installed: requirements.txt setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

$(VENV)/.installed-docs: $(VENV)/.installed requirements-docs.txt
	$(PY) -m pip install -q -r requirements-docs.txt
	touch $@

train: venv
	$(PY) train.py $(ARGS)

# Two pytest workers: many cases wait on subprocesses (interpreter start-up, servers, a browser) and
# single-threaded imports. The tests of a module stay on one worker (its module fixtures are built once);
# the session's trained run is made once for both (tests/conftest.py).
TEST_WORKERS ?= 2
test: venv-dev
	$(PY) -m pytest -m "not slow" -n $(TEST_WORKERS) --dist loadscope $(ARGS)

test-all: venv-dev
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope $(ARGS)

# Each benchmark prints its figures and writes them as JSON to benchmarks/results/ (benchmarks/record.py);
# copy a result to docs/data/benchmarks/ and run `python -m facedyn.docs.render` to publish it.
bench: venv-dev
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# The documentation site, built as CI builds it: a broken link or anchor fails.
docs: venv-docs
	$(PY) -m mkdocs build --strict
