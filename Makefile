# The README's two commands: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FRAMEWORKS_STAMP := $(VENV)/.frameworks-installed
export DAGSTER_HOME := $(CURDIR)/.data/dagster_home

BENCH_STAMP := $(VENV)/.bench-installed
# Debian's Chromium for the UI test (`make browser`); Playwright never downloads a browser
CHROMIUM := /usr/bin/chromium
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: setup demo test test-slow browser bench bench-full lint dev clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# `make test` (and so CI) also installs the `frameworks` extra (LightGBM, ONNX Runtime and
# converters, PyTorch CPU, TensorFlow CPU: about 2 GB) so every model adapter is exercised;
# `make demo` and `make dev` keep the lean core + dev install.
$(FRAMEWORKS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,frameworks]'
	touch $(FRAMEWORKS_STAMP)

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	cp batch_assets/local_instance.yaml $@

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m batch_assets.dev.demo --data-dir .data

test: $(FRAMEWORKS_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow"

test-slow: $(FRAMEWORKS_STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest -m slow

# The slow suite's UI test (tests/ui/test_ui_browser.py) drives Debian's Chromium headless
# through Playwright (the dev extra), given /usr/bin/chromium: installed from Debian's
# packages when missing (needs root, as in CI; elsewhere `sudo apt-get install chromium`).
browser: $(CHROMIUM)

$(CHROMIUM):
	@test "$$(id -u)" = 0 || { echo "$@ is missing: install Debian's chromium as root (apt-get install chromium)" >&2; exit 1; }
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
	test -x $@

# Benchmarks (README "Performance"): short mode about 3 minutes, full mode about 40.
# The frameworks extra too: W4/W5 score PyTorch and Keras models.
$(BENCH_STAMP): $(FRAMEWORKS_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,frameworks]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks --mode short
	$(BIN)/python -m benchmarks.multi_model --mode short
	$(BIN)/python -m benchmarks.small_files

bench-full: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks --mode full
	$(BIN)/python -m benchmarks.multi_model --mode full

lint: $(STAMP)
	$(BIN)/ruff check .

# The launcher makes Ctrl-C and SIGTERM stop every dagster process (SIGKILL after 10 s; see
# batch_assets/dev/dev_server.py). DEV_ARGS go to dagster dev, e.g. make dev DEV_ARGS="-p 3001".
DEV_ARGS ?=
dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	exec $(BIN)/python -m batch_assets.dev.dev_server -- $(BIN)/dagster dev -w workspace.yaml $(DEV_ARGS)

clean:
	rm -rf .data
