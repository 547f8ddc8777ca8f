# cfutures — build, test, demo, sanitize.
#
#   make test       build (warnings as errors) and run the suite on python3 and
#                   on every pyenv CPython 3.9 - 3.13 present; absent ones are
#                   reported and skipped
#   make demo       lesson examples under both modules + a short benchmark table
#   make sanitize   ASan + UBSan build, suite run under it (python3 only)
#   make bench      the full benchmark (benchmarks/run.py), with the peers loky
#                   and mpire installed into its venv; JSON in benchmarks/
#
# Each target creates what it needs: one virtual environment per interpreter,
# .venv-<version>, with the test extra and cfutures (editable) installed; the
# extension is rebuilt in place for that interpreter with strict warnings.

PYTHON      ?= python3
VERSIONS    ?= 3.9 3.10 3.11 3.12 3.13
PYENV_ROOT  ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)
PYTEST_ARGS ?=
# Three pytest workers (pytest-xdist, in the test extra), one test file at a
# time each: module-level state (cached child runs, fixtures) stays in one
# process.  Three on two cores: much of the suite waits on child processes,
# and a third worker uses that time (3.11: 105 s against 131-138 s with two,
# 108 s with four).  Files are handed out in collection order, which puts
# the longest first (tests/conftest.py), not by number of tests.
# `make test XDIST=` runs the suite in one process.
XDIST       ?= -n 3 --dist loadfile --no-loadscope-reorder

.PHONY: test test-one demo bench sanitize clean

# The virtual environments are made first, all at once (pip mostly waits),
# then the extension is built for each, all at once (one compiler per core).
test:
	@for v in $(VERSIONS); do \
	  py=$$(ls -d $(PYENV_ROOT)/versions/$$v.*/bin/python$$v 2>/dev/null | sort -V | tail -n 1); \
	  [ -n "$$py" ] || py=$$(command -v python$$v 2>/dev/null); \
	  [ -z "$$py" ] || ./scripts/venv.sh "$$py" .venv-$$v & \
	done; wait
	@status=0; pids=""; for v in $(VERSIONS); do \
	  if [ -x .venv-$$v/bin/python ]; then \
	    CFUTURES_STRICT=1 .venv-$$v/bin/python scripts/build.py & pids="$$pids $$!"; \
	  fi; \
	done; for pid in $$pids; do wait $$pid || status=1; done; exit $$status
	@status=0; ran=""; missing=""; \
	for v in $(VERSIONS); do \
	  py=$$(ls -d $(PYENV_ROOT)/versions/$$v.*/bin/python$$v 2>/dev/null | sort -V | tail -n 1); \
	  [ -n "$$py" ] || py=$$(command -v python$$v 2>/dev/null); \
	  if [ -z "$$py" ]; then missing="$$missing $$v"; echo "== CPython $$v: not on this machine, skipped"; continue; fi; \
	  echo "== CPython $$v ($$py)"; \
	  $(MAKE) --no-print-directory test-one PY="$$py" VER=$$v BUILT=1 || status=1; \
	  ran="$$ran $$v"; \
	done; \
	echo "== ran on:$$ran"; [ -z "$$missing" ] || echo "== skipped (absent):$$missing"; \
	exit $$status

# One interpreter: PY=/path/to/python VER=3.x (BUILT=1: `test` built it).
# Bytecode is written even where the environment says not to
# (PYTHONDONTWRITEBYTECODE): the hundreds of child interpreters the suite
# starts, and pytest's rewriting of asserts, then compile each module once.
test-one:
	@./scripts/venv.sh "$(PY)" .venv-$(VER)
	@[ -n "$(BUILT)" ] || CFUTURES_STRICT=1 .venv-$(VER)/bin/python scripts/build.py
	@PYTHONDONTWRITEBYTECODE= .venv-$(VER)/bin/python -m pytest -p no:cacheprovider $(XDIST) $(PYTEST_ARGS)

demo:
	@./scripts/venv.sh "$(PYTHON)" .venv-demo
	@CFUTURES_STRICT=1 .venv-demo/bin/python scripts/build.py
	@.venv-demo/bin/python examples/run_all.py
	@.venv-demo/bin/python benchmarks/run.py --quick --json build/results-quick.json

bench:
	@./scripts/venv.sh "$(PYTHON)" .venv-demo
	@.venv-demo/bin/python -m pip install -q --disable-pip-version-check -r benchmarks/requirements.txt
	@CFUTURES_STRICT=1 .venv-demo/bin/python scripts/build.py
	@.venv-demo/bin/python benchmarks/run.py $(BENCH_ARGS)

# The interpreter is not built with ASan, so the runtime is preloaded; leak
# detection is off because CPython itself keeps memory until exit (refcount
# leaks are caught by tests/test_refleaks.py instead).  The crash tests make
# workers segfault and run out of memory on purpose: handle_segv=0 and
# allocator_may_return_null=1 let those happen as they would without ASan.
sanitize:
	@./scripts/venv.sh "$(PYTHON)" .venv-sanitize deps
	@CFUTURES_STRICT=1 CFUTURES_SANITIZE=1 .venv-sanitize/bin/python scripts/build.py --out build/sanitize
	@PYTHONPATH=$(CURDIR)/build/sanitize LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:handle_segv=0:allocator_may_return_null=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  .venv-sanitize/bin/pytest -p no:cacheprovider $(XDIST) $(PYTEST_ARGS)

clean:
	rm -rf build .venv-* cfutures/*.so *.egg-info
