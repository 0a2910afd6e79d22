# `make train` and `make test` work on a fresh machine: each creates the venv when it is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= $(abspath ../shared)
# MediaPipe's bundle: taken from ../shared when it is there (developers, CI); users set FACEDYN_LANDMARKER
# or let facedyn download it on first use.
ifneq ($(wildcard $(SHARED)/models/face_landmarker.task),)
export FACEDYN_LANDMARKER ?= $(SHARED)/models/face_landmarker.task
endif

.PHONY: venv train test test-all bench
venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

train: venv
	$(PY) train.py $(ARGS)

# Two pytest workers: many cases wait on subprocesses (interpreter start-up, servers, a browser) and
# single-threaded imports. The tests of a module stay on one worker (its module fixtures are built once);
# the session's trained run is made once for both (tests/conftest.py).
TEST_WORKERS ?= 2
test: venv
	$(PY) -m pytest -m "not slow" -n $(TEST_WORKERS) --dist loadscope $(ARGS)

test-all: venv
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope $(ARGS)

bench: venv
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
