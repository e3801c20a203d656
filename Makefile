# Every target bootstraps .venv on a fresh machine that has only Python 3.10+,
# a C compiler and make.  The package is always built from source as a wheel
# (isolated build: scikit-build-core, Cython and cython-cmake come from PyPI)
# and installed non-editable, so tests run against what users install.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
EXTRAS ?= test,bench,dev,prometheus,plot
WHEEL_STAMP := $(VENV)/.wheel-installed
SOURCES := $(shell find src -type f \( -name '*.py' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pyi' -o -name '*.c' -o -name '*.h' \)) \
           pyproject.toml CMakeLists.txt

.PHONY: help venv wheel install demo test test-integrations test-debug lint bench bench-report clean

help:
	@echo "make demo    run the main job on its built-in default scenario"
	@echo "make test    build the wheel from source, install it, run the tests"
	@echo "make test-integrations  add the litellm and otel extras, run their tests and examples"
	@echo "make lint    ruff, mypy and stubtest"
	@echo "make bench   side-by-side benchmarks (pytest-benchmark)"
	@echo "make bench-report  measure the comparisons and rewrite BENCHMARKS.md"

$(VENV)/.bootstrapped:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	touch $@

venv: $(VENV)/.bootstrapped

$(WHEEL_STAMP): $(VENV)/.bootstrapped $(SOURCES)
	rm -rf dist
	$(PIP) wheel --no-deps --wheel-dir dist .
	$(PIP) install --quiet --force-reinstall --no-deps dist/arbiter_runtime-*.whl
	$(PIP) install --quiet "$$(ls dist/arbiter_runtime-*.whl)[$(EXTRAS)]"
	touch $@

wheel install: $(WHEEL_STAMP)

demo: $(WHEEL_STAMP)
	$(VENV)/bin/arbiter-core simulate

test: $(WHEEL_STAMP)
	$(VENV)/bin/pytest -q tests benchmarks --benchmark-disable -p no:cacheprovider
	$(VENV)/bin/pytest -q --doctest-modules --doctest-ignore-import-errors --pyargs arbiter_core \
		-p no:cacheprovider

# The integrations against their real host libraries (the pinned extras), the
# integration modules' doctests, and the examples (fake provider, no network).
INTEGRATION_STAMP := $(VENV)/.integrations-installed
$(INTEGRATION_STAMP): $(WHEEL_STAMP)
	$(PIP) install --quiet "$$(ls dist/arbiter_runtime-*.whl)[litellm,otel]"
	touch $@

test-integrations: $(INTEGRATION_STAMP)
	LITELLM_LOCAL_MODEL_COST_MAP=True $(VENV)/bin/pytest -q -p no:cacheprovider \
		tests/test_litellm.py tests/test_opentelemetry.py tests/test_aio.py tests/test_examples.py
	LITELLM_LOCAL_MODEL_COST_MAP=True $(VENV)/bin/pytest -q --doctest-modules -p no:cacheprovider \
		--pyargs arbiter_core.integrations.litellm arbiter_core.exporters.opentelemetry

# Bounds-checked build (ARBITER_DEBUG=ON) in its own build dir, then the tests.
test-debug: $(VENV)/.bootstrapped
	rm -rf dist-debug
	ARBITER_DEBUG=ON $(PIP) wheel --no-deps --wheel-dir dist-debug -Cbuild-dir=build/debug .
	$(PIP) install --quiet --force-reinstall --no-deps dist-debug/arbiter_runtime-*.whl
	rm -f $(WHEEL_STAMP)
	$(VENV)/bin/pytest -q tests -p no:cacheprovider

lint: $(WHEEL_STAMP)
	$(VENV)/bin/ruff check src tests benchmarks asv_benchmarks
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest arbiter_core._ringbuf arbiter_core._select arbiter_core._alloc arbiter_core._benchfloor

bench: $(WHEEL_STAMP)
	$(VENV)/bin/pytest benchmarks --benchmark-only --benchmark-columns=min,median,ops \
		--benchmark-sort=name -p no:cacheprovider

# Measure every side-by-side comparison once and rewrite BENCHMARKS.md (a few minutes).
bench-report: $(WHEEL_STAMP)
	$(PY) benchmarks/report.py --output BENCHMARKS.md

clean:
	rm -rf build dist dist-debug $(VENV) .asv asv_benchmarks/.asv
