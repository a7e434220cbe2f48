# The two commands of README's quick start. Each sets up what it needs on first use (scripts/bootstrap.py:
# a virtual environment in .venv with the right PyTorch for this machine and the course) and reuses it afterwards.
#   make run     the main job: cl-course run on its defaults (make run ARGS="--methods naive,ewc --seeds 0 1 2")
#   make test    the tests: every notebook top to bottom, then the pytest tests
PYTHON ?= python3
VENV ?= .venv
ARGS ?=
BIN := $(VENV)/bin

.PHONY: run test env test-assets

env:
	$(PYTHON) scripts/bootstrap.py --venv $(VENV)

run: env
	$(BIN)/cl-course run $(ARGS)

# The browser tests serve bertviz's scripts from tests/js (npm ci, once); they need Chromium (apt-get install chromium).
test-assets:
	@if [ ! -d tests/js/node_modules ] && command -v npm >/dev/null; then npm ci --prefix tests/js --no-audit --no-fund --loglevel=error; fi

test: env test-assets
	PATH="$(abspath $(BIN)):$$PATH" nbdev-test --n-workers 1 --timing && PATH="$(abspath $(BIN)):$$PATH" pytest -q tests
