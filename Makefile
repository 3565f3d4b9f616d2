# Two commands on a fresh machine:  make demo  |  make test
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.sim2real-installed

.PHONY: install demo test test-fast chromium lint bench

# torch/torchvision are pinned exactly in pyproject.toml and come from local wheels
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[dev,cluster]'
	$(PY) -m pip check
	touch $(STAMP)

install: $(STAMP)

# the main job: the whole chain through `dvc repro`, then the gap table; report in data/gap_report/
demo: install
	test -d .git || (git init -q && git add -A && git -c user.name=sim2real -c user.email=sim2real@localhost commit -qm "sim2real demo")
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/sim2real demo

# headless Chromium (Debian) for the report test
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# one pytest worker per core (pytest-xdist); each test process uses one torch thread (tests/conftest.py);
# PYTEST_PARALLEL= (empty) runs in one process
PYTEST_PARALLEL ?= -n auto --dist loadfile --no-loadscope-reorder

test: install chromium
	PATH="$(abspath $(BIN)):$$PATH" $(PY) -m pytest -q $(PYTEST_PARALLEL) --durations=25

# the fast tier: everything but the end-to-end tests that launch processes (dvc, Dagster, Chromium, DDP)
test-fast: install
	PATH="$(abspath $(BIN)):$$PATH" $(PY) -m pytest -q $(PYTEST_PARALLEL) -m "not slow and not e2e"

lint: install
	$(BIN)/ruff check sim2real orchestration tests benchmarks

# every speed ratio, side by side in one run at the camvid profile's 128x160 (figures: BENCHMARKS.md);
# BENCH_ARGS=--quick for the CI-sized run
bench: install
	PATH="$(abspath $(BIN)):$$PATH" $(PY) benchmarks/bench_all.py $(BENCH_ARGS)
