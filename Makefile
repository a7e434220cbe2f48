# The two commands of README's quick start. Each sets up what it needs on first use (scripts/bootstrap.py:
# a virtual environment in .venv with the right PyTorch for this machine and the course) and reuses it afterwards.
#   make run     the main job: cl-course run on its defaults (make run ARGS="--methods naive,ewc --seeds 0 1 2")
#   make test    the tests: every notebook top to bottom, small and at full size, then the pytest tests
PYTHON ?= python3
VENV ?= .venv
ARGS ?=
BIN := $(VENV)/bin

.PHONY: run test env test-assets test-small test-full test-py outputs preview

env:
	$(PYTHON) scripts/bootstrap.py --venv $(VENV)

run: env
	$(BIN)/cl-course run $(ARGS)

# The browser tests serve bertviz's scripts from tests/js (npm ci, once); they need Chromium (apt-get install chromium).
test-assets:
	@if [ ! -d tests/js/node_modules ] && command -v npm >/dev/null; then npm ci --prefix tests/js --no-audit --no-fund --loglevel=error; fi

# Every notebook small (as a CPU learner runs it), every notebook at full size within the smoke budget (test-full: cells
# flagged slow and gpu included, on a 124M GPT-2 stand-in and a WikiText folder with a train split, tests/standin.py,
# built once in .cache/standin; offline they stand in for the hub's gpt2 and WikiText's train split), then the pytest tests.
test: env test-assets test-small test-full test-py

test-small: env
	PATH="$(abspath $(BIN)):$$PATH" nbdev-test --n-workers 1 --timing

STANDIN := .cache/standin
FULL_NBS ?= $(sort $(wildcard nbs/*.ipynb))
# One nbdev-test process per notebook: a single worker running them all keeps each notebook's 124M models and Fisher
# estimates until it ends, and was killed out of memory on this 24 GB machine; on its own no notebook needs more than 16 GB.
test-full: env
	$(BIN)/python tests/standin.py $(STANDIN) >/dev/null
	@failed=; for nb in $(FULL_NBS); do \
	  PATH="$(abspath $(BIN)):$$PATH" CL_COURSE_SIZE=full CL_COURSE_BUDGET=smoke CL_COURSE_MODEL_DIR="$(abspath $(STANDIN))/gpt2" \
	    CL_COURSE_DATA="$(abspath $(STANDIN))/wikitext" nbdev-test "$$nb" --n-workers 1 --timing --flags "slow gpu" || failed="$$failed $$nb"; \
	done; if [ -n "$$failed" ]; then echo "failed at full size:$$failed" >&2; exit 1; fi

test-py: env test-assets
	PATH="$(abspath $(BIN)):$$PATH" pytest -q tests --junitxml=.cache/pytest-junit.xml   # per-test times in the XML

# The notebooks are stored with the outputs of a small (CPU) run, scrubbed of stderr, timings, widget state and machine
# paths (scripts/outputs.py); `make outputs` refreshes them, cells flagged slow included. `make preview` renders the
# docs pages without Quarto into _preview/ (scripts/preview.py; tests/test_preview.py opens them in Chromium).
outputs: env
	$(BIN)/python scripts/outputs.py $(NBS)

preview: env
	$(BIN)/python scripts/preview.py --out _preview
