# deepspark: every set-up step a fresh Debian machine needs lives here.
#   make demo     install, then classify the sample photos on local Spark
#   make test     install (with test dependencies), then the default test suite
#   make install  .venv with deepspark and all extras
#   make bench    side-by-side benchmarks: images, then text and audio (see docs/benchmarks.md)
#   make bench-modalities   the text and audio benchmarks alone
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test-tools demo test test-slow bench bench-modalities clean

$(STAMP): pyproject.toml scripts/install.sh
	bash scripts/install.sh $(PYTHON) $(VENV)
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/deepspark predict samples/ --top-k 5

# Tools the tests drive (chromium renders the HTML report); installed when missing.
test-tools: install
	@command -v chromium >/dev/null 2>&1 || \
		DEEPSPARK_INSTALL_TEST_TOOLS=1 bash scripts/install.sh $(PYTHON) $(VENV)

test: test-tools
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

# BENCH_ARGS, e.g. make bench BENCH_ARGS="-n 400 --reps 2 --text-n 2000 --audio-minutes 5"
# or "--memory" (see docs/benchmarks.md)
bench: install
	$(PY) -m pip install -q -e ".[bench]"
	bash benchmarks/setup_peers.sh $(PYTHON) bench-venv
	$(PY) benchmarks/run.py --modalities $(BENCH_ARGS)

# MODAL_ARGS, e.g. make bench-modalities MODAL_ARGS="--text-n 2000 --audio-minutes 5 --reps 2"
bench-modalities: install
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/modalities.py $(MODAL_ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
