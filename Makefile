# Every target bootstraps .venv on a fresh machine that has only Python 3.10+,
# a C compiler and make.  The package is always built from source as a wheel
# (isolated build: scikit-build-core, Cython and cython-cmake come from PyPI)
# and installed non-editable, so tests run against what users install.
#
# Two kinds of build:
#   dev (make test/lint/bench/demo/docs)  build/dev-wheel/, with the benchmark
#                                          floor module _benchfloor (ARBITER_BENCHFLOOR=ON)
#   release (make dist)                    dist/: sdist + manylinux wheel, without it

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
EXTRAS ?= test,bench,dev,prometheus,plot,monitor,browser,fleet,docs,release
DEV_WHEELS  := build/dev-wheel
SMOKE_VENV  := build/smoke-venv
WHEEL_STAMP := $(VENV)/.wheel-installed
SOURCES := $(shell find src -type f \( -name '*.py' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.pyi' -o -name '*.c' -o -name '*.h' \)) \
           pyproject.toml CMakeLists.txt

.PHONY: help venv wheel install install-ray demo test test-integrations test-ray test-ray-serve \
        test-debug test-sanitize soak lint bench bench-report bench-traces bench-compare dist \
        dist-smoke docs clean

help:
	@echo "make demo    run the main job on its built-in default scenario"
	@echo "make test    build the wheel from source, install it, run the tests"
	@echo "make test-ray  install the ray extra; the simulator-on-Ray and Ray Serve router tests"
	@echo "make test-ray-serve  the Ray Serve request router on a real local Serve app"
	@echo "make test-sanitize  ASan+UBSan build; the suite and a hostile-input run under it"
	@echo "make soak    the soak and decay tests at 10x, and the fuzzers at 20x (minutes)"
	@echo "make test-integrations  add the litellm and otel extras, run their tests and examples"
	@echo "make lint    ruff, mypy and stubtest"
	@echo "make bench   side-by-side benchmarks (pytest-benchmark)"
	@echo "make bench-report  measure the comparisons and rewrite BENCHMARKS.md"
	@echo "make bench-traces  replay the LLM traces, rewrite BENCHMARKS.md's trace section"
	@echo "make bench-compare BASE=main HEAD_REV=HEAD  asv continuous between two commits"
	@echo "make dist    sdist + manylinux wheel in dist/, checked with twine --strict"
	@echo "make dist-smoke  install dist/'s sdist, then its wheel, in a fresh venv and smoke-test"
	@echo "make docs    build the documentation site into site/ (warnings are errors)"

$(VENV)/.bootstrapped:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	touch $@

venv: $(VENV)/.bootstrapped

$(WHEEL_STAMP): $(VENV)/.bootstrapped $(SOURCES)
	rm -rf $(DEV_WHEELS)
	ARBITER_BENCHFLOOR=ON $(PIP) wheel --no-deps --wheel-dir $(DEV_WHEELS) .
	$(PIP) install --quiet --force-reinstall --no-deps $(DEV_WHEELS)/arbiter_runtime-*.whl
	$(PIP) install --quiet "$$(ls $(DEV_WHEELS)/arbiter_runtime-*.whl)[$(EXTRAS)]"
	touch $@

wheel install: $(WHEEL_STAMP)

demo: $(WHEEL_STAMP)
	$(VENV)/bin/arbiter-core simulate

test: $(WHEEL_STAMP)
	$(VENV)/bin/pytest -q tests benchmarks --benchmark-disable -p no:cacheprovider \
		--ignore=tests/test_ray_serve.py
	$(VENV)/bin/pytest -q --doctest-modules --doctest-ignore-import-errors --pyargs arbiter_core \
		-p no:cacheprovider

# The integrations against their real host libraries (the pinned extras), the
# integration modules' doctests, and the examples (fake provider, no network).
INTEGRATION_STAMP := $(VENV)/.integrations-installed
$(INTEGRATION_STAMP): $(WHEEL_STAMP)
	$(PIP) install --quiet "$$(ls $(DEV_WHEELS)/arbiter_runtime-*.whl)[litellm,otel]"
	touch $@

test-integrations: $(INTEGRATION_STAMP)
	LITELLM_LOCAL_MODEL_COST_MAP=True $(VENV)/bin/pytest -q -p no:cacheprovider \
		tests/test_litellm.py tests/test_opentelemetry.py tests/test_aio.py tests/test_examples.py
	LITELLM_LOCAL_MODEL_COST_MAP=True $(VENV)/bin/pytest -q --doctest-modules -p no:cacheprovider \
		--pyargs arbiter_core.integrations.litellm arbiter_core.exporters.opentelemetry

# Ray is big, so it is not in EXTRAS: this adds it, Ray Serve included (CI runs
# it before make test, so tests/test_ray_executor.py runs there; without Ray it
# skips).
install-ray: $(WHEEL_STAMP)
	$(PIP) install --quiet "$$(ls $(DEV_WHEELS)/arbiter_runtime-*.whl)[ray]"

# The Ray Serve request router on a real local Serve application (about a
# minute on 2 cores); Ray missing is a failure here, not a skip.
test-ray-serve: install-ray
	ARBITER_REQUIRE_RAY=1 RAY_USAGE_STATS_ENABLED=0 $(VENV)/bin/pytest -q -p no:cacheprovider \
		-W "ignore::DeprecationWarning" tests/test_ray_serve.py

test-ray: install-ray test-ray-serve
	ARBITER_REQUIRE_RAY=1 $(VENV)/bin/pytest -q tests/test_ray_executor.py -p no:cacheprovider

# Bounds-checked build (ARBITER_DEBUG=ON) in its own build dir, then the tests.
test-debug: $(VENV)/.bootstrapped
	rm -rf build/debug-wheel
	ARBITER_DEBUG=ON ARBITER_BENCHFLOOR=ON $(PIP) wheel --no-deps --wheel-dir build/debug-wheel \
		-Cbuild-dir=build/debug .
	$(PIP) install --quiet --force-reinstall --no-deps build/debug-wheel/arbiter_runtime-*.whl
	rm -f $(WHEEL_STAMP)
	$(VENV)/bin/pytest -q tests -p no:cacheprovider

# AddressSanitizer + UndefinedBehaviorSanitizer build of the extension modules
# (RelWithDebInfo, its own build dir), installed into build/sanitize-site, which
# goes first on PYTHONPATH: .venv keeps its normal build.  Python itself is not
# instrumented, so libasan is preloaded (and libstdc++, so that C++ extensions
# such as matplotlib's can throw under the interceptors).  Reports go to
# build/sanitize-logs/ (pytest captures stderr); any file there fails the run.
# Leak detection is off: CPython frees little at exit by design.
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer
SAN_LOGS  := $(CURDIR)/build/sanitize-logs
SAN_ENV   := LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libstdc++.so)" \
	ASAN_OPTIONS=detect_leaks=0:log_path=$(SAN_LOGS)/asan \
	UBSAN_OPTIONS=print_stacktrace=1:log_path=$(SAN_LOGS)/ubsan \
	PYTHONPATH=$(CURDIR)/build/sanitize-site
test-sanitize: $(WHEEL_STAMP)
	rm -rf build/sanitize-wheel build/sanitize-site $(SAN_LOGS)
	mkdir -p $(SAN_LOGS)
	ARBITER_BENCHFLOOR=ON $(PIP) wheel --no-deps --wheel-dir build/sanitize-wheel \
		-Cbuild-dir=build/sanitize -Ccmake.build-type=RelWithDebInfo \
		"-Ccmake.define.CMAKE_C_FLAGS=$(SAN_FLAGS)" \
		"-Ccmake.define.CMAKE_MODULE_LINKER_FLAGS=-fsanitize=address,undefined" .
	$(PIP) install --quiet --no-deps --target build/sanitize-site build/sanitize-wheel/arbiter_runtime-*.whl
	$(SAN_ENV) $(PY) -c "import arbiter_core, sys; \
		sys.exit(0 if '/build/sanitize-site/' in arbiter_core.__file__ else 'not the sanitized build')"
	# the suite (the smoke test insists on site-packages, and the fleet's member
	# processes hung under ASan once, so they sit this one out)
	$(SAN_ENV) $(VENV)/bin/pytest -q tests -p no:cacheprovider \
		--deselect tests/test_release.py::test_smoke_script_passes_on_this_install \
		--deselect tests/test_fleet_redis.py::test_members_in_processes_and_a_killed_member
	# the hostile-input run: the fuzzers with ten times the examples
	$(SAN_ENV) ARBITER_FUZZ_EXAMPLES=400 $(VENV)/bin/pytest -q -p no:cacheprovider \
		tests/test_fuzz_api.py tests/test_fuzz_files.py tests/test_stress.py tests/test_faults.py
	@if [ -n "$$(ls -A $(SAN_LOGS))" ]; then \
		echo "sanitizer reports:"; cat $(SAN_LOGS)/*; exit 1; \
	else echo "test-sanitize: no sanitizer report"; fi

# The soak and decay tests at ten times the CI size (4,000,000 requests,
# 10,000,000 records) and the fuzzers at 20 times the examples: a few
# minutes.
soak: $(WHEEL_STAMP)
	ARBITER_SOAK_SCALE=10 $(VENV)/bin/pytest -q -p no:cacheprovider tests/test_soak.py
	ARBITER_FUZZ_EXAMPLES=1200 $(VENV)/bin/pytest -q -p no:cacheprovider \
		tests/test_fuzz_api.py tests/test_fuzz_files.py

lint: $(WHEEL_STAMP)
	$(VENV)/bin/ruff check src tests benchmarks asv_benchmarks examples docs
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest arbiter_core._ringbuf arbiter_core._select arbiter_core._request arbiter_core._alloc arbiter_core._benchfloor

bench: $(WHEEL_STAMP)
	$(VENV)/bin/pytest benchmarks --benchmark-only --benchmark-columns=min,median,ops \
		--benchmark-sort=name -p no:cacheprovider

# Wall-clock comparison of two commits with asv (builds both in isolated
# environments; fails when a benchmark is slower by more than BENCH_FACTOR).
# make bench-compare BASE=main HEAD_REV=HEAD
BASE ?= main
HEAD_REV ?= HEAD
BENCH_FACTOR ?= 1.1
bench-compare: $(WHEEL_STAMP)
	cd asv_benchmarks && ../$(VENV)/bin/asv machine --yes >/dev/null && \
		../$(VENV)/bin/asv continuous -f $(BENCH_FACTOR) --split $(BASE) $(HEAD_REV)

# Measure every side-by-side comparison once and rewrite BENCHMARKS.md (a few minutes).
bench-report: $(WHEEL_STAMP)
	$(PY) benchmarks/report.py --output BENCHMARKS.md

bench-traces: $(WHEEL_STAMP)
	$(PY) benchmarks/trace_report.py --output BENCHMARKS.md

# The release artefacts.  `python -m build` makes the sdist and then builds the
# wheel from that sdist (so a file missing from the sdist breaks here, not on a
# user's machine); auditwheel turns the linux_* tag PyPI refuses into manylinux_*.
# The wheel for every platform comes from cibuildwheel ([tool.cibuildwheel]);
# the plan for Linux and macOS is printed as a check of that configuration.
dist: $(WHEEL_STAMP)
	rm -rf dist
	ARBITER_BENCHFLOOR=OFF $(PY) -m build --outdir dist .
ifeq ($(shell uname -s),Linux)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/auditwheel repair --wheel-dir dist \
		dist/arbiter_runtime-*-linux_*.whl
	rm dist/arbiter_runtime-*-linux_*.whl
	$(VENV)/bin/auditwheel show dist/arbiter_runtime-*manylinux*.whl
endif
	$(VENV)/bin/twine check --strict dist/*
	$(VENV)/bin/cibuildwheel --print-build-identifiers --platform linux .
	$(VENV)/bin/cibuildwheel --print-build-identifiers --platform macos .
	ls -l dist

# What a user does with dist/: a fresh venv, `pip install` of the sdist (a full
# source build), the smoke test, then the same with the wheel.  Run from / so
# that nothing from this checkout can be imported by accident.
dist-smoke:
	@ls dist/arbiter_runtime-*.tar.gz dist/arbiter_runtime-*.whl >/dev/null
	rm -rf $(SMOKE_VENV)
	$(PYTHON) -m venv $(SMOKE_VENV)
	$(SMOKE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SMOKE_VENV)/bin/python -m pip install --quiet --no-cache-dir dist/arbiter_runtime-*.tar.gz
	cd / && $(abspath $(SMOKE_VENV))/bin/python $(CURDIR)/tests/smoke.py --release
	$(SMOKE_VENV)/bin/python -m pip install --quiet --force-reinstall --no-deps dist/arbiter_runtime-*.whl
	cd / && $(abspath $(SMOKE_VENV))/bin/python $(CURDIR)/tests/smoke.py --release

# The documentation site (MkDocs + mkdocstrings); any warning fails the build.
docs: $(WHEEL_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf build dist dist-debug site $(VENV) .asv asv_benchmarks/.asv
