# Developer and CI entry points. `make test` is the one command the README and
# .ci/run both use.
#
# `install` is a regular (non-editable) install: it always rebuilds the Cython core,
# and the tests import that installed copy (src/ is not on sys.path), so they test
# what users get. `dev` is an editable install plus an in-place build, for quick
# iteration; rerun it after editing a .pyx/.pxd/.pxi file.

PYTHON ?= python3

.PHONY: bench-mqtt system-deps install dev test test-stalls lint bench fuzz clean

system-deps:
	bash scripts/install-system-deps.sh

install:
	$(PYTHON) -m pip install '.[test]'

dev:
	$(PYTHON) -m pip install -e '.[test]'
	$(PYTHON) setup.py build_ext --inplace

lint:
	$(PYTHON) -m ruff check src tests bench examples
	$(PYTHON) -m mypy

test: system-deps install
	$(PYTHON) -m ruff check src tests bench examples
	$(PYTHON) -m mypy
	$(PYTHON) -m pytest -q

# The suite on a host that stalls (a real-time spinner on each CPU, 25 ms every 400 ms
# on average; root): finds tests that assume a quiet host before CI does.
test-stalls: install
	$(PYTHON) scripts/host_stalls.py -- $(PYTHON) -m pytest -q -p no:cacheprovider

# BENCH_ARGS: run.py's flags, e.g. the spacing figures of open-loop clients (see
# bench/README.md, "Spacing"):
#   make bench BENCH_ARGS='--spacing --scenario open-20k open-1k --client hammer wrk2
#                          --wrk2-src ~/src/wrk2'
BENCH_ARGS ?=
bench: install
	$(PYTHON) bench/run.py $(BENCH_ARGS)

# MQTT: hammer against mqtt-benchmark, mqtt-stresser and gmqtt, then paced publishing
# (bench/README.md, "MQTT"); MQTT_BENCH_ARGS: mqtt_bench.py's flags, e.g.
#   make bench-mqtt MQTT_BENCH_ARGS='--mqtt-benchmark /tmp/mqtt-benchmark-build/mqtt-benchmark'
MQTT_BENCH_ARGS ?=
bench-mqtt: install
	$(PYTHON) bench/mqtt_bench.py $(MQTT_BENCH_ARGS)
	$(PYTHON) bench/mqtt_paced.py

# Searches beyond the deterministic suite: the atheris framing fuzzer with a fresh seed
# (new finds go to a scratch corpus, crashes to ./crash-*), then the hypothesis
# properties with random seeds. Add a crash input to tests/fuzz/corpus once it is fixed.
FUZZ_SECONDS ?= 300
fuzz:
	mkdir -p .fuzz-corpus
	$(PYTHON) tests/fuzz/fuzz_framing.py -max_total_time=$(FUZZ_SECONDS) -timeout=5 \
		-rss_limit_mb=1024 .fuzz-corpus tests/fuzz/corpus
	HAMMER_HYPOTHESIS_PROFILE=explore $(PYTHON) -m pytest -q -p no:cacheprovider \
		tests/unit/test_framing.py tests/cli/test_cli_errors.py

clean:
	rm -rf build dist src/*.egg-info .pytest_cache .ruff_cache .hypothesis .fuzz-corpus
	rm -f src/hammer/_core.c src/hammer/_core*.so src/hammer/_core*.html
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
