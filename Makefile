# Two commands set everything up on a fresh clone: `make demo` and `make test`.
# Both create .venv with the machine's python3 and install into it exactly the versions (and
# sha256) that requirements.lock pins, then the project itself (docs/support.md, "Versions").
PYTHON ?= python3
LOCK := requirements.lock
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MEMBERS ?= 2000
BENCH_MEMBERS ?= 100000

.PHONY: demo test lab lock bench bench-transfers bench-program lint clean screenshots

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Re-pin every dependency (transitively, with hashes) for Python 3.11 on Linux after a change to
# pyproject.toml's dependencies; needs uv (`pip install uv`). Commit the new lock with the change.
lock:
	uv pip compile pyproject.toml --extra test --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
		--generate-hashes --custom-compile-command "make lock" --output-file $(LOCK)

demo: $(STAMP)
	$(BIN)/loyalty-migrate demo --dir demo --members $(MEMBERS)

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

# JupyterLab refuses to start as root unless told to (containers and CI run as root).
lab: $(STAMP)
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/

bench: $(STAMP)
	$(BIN)/python -m benchmarks --members $(BENCH_MEMBERS)

# Stage 03 on 10M ledger rows (1M members x 10); stages 00-02 run once and are reused.
bench-transfers: $(STAMP)
	$(BIN)/python -m benchmarks.stage03 --members 1000000

# The whole program through `loyalty-migrate run` (issue #15): generated once under
# bench-out/program and reused; PROGRAM_MEMBERS="100000 300000 1000000" shows the growth.
PROGRAM_MEMBERS ?= 1000000
bench-program: $(STAMP)
	$(BIN)/python -m benchmarks.program --members $(PROGRAM_MEMBERS)

# The reviewer's pages of the newest demo run (make demo first) at 1,400 px, in headless Chromium
# (Debian's chromium package), into screenshots/ (ignored by git). RUN=<run dir> picks another run.
RUN ?= $(lastword $(sort $(wildcard demo/runs/*)))
screenshots: $(STAMP)
	$(BIN)/python tests/e2e/screenshots.py $(RUN) screenshots

clean:
	rm -rf demo .pytest_cache screenshots
