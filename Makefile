# The two commands of README's quick start. Each sets up what it needs on first use (scripts/bootstrap.py:
# a virtual environment in .venv with the right PyTorch for this machine and the course) and reuses it afterwards.
#   make run     the main job: cl-course run on its defaults (make run ARGS="--methods naive,ewc --seeds 0 1 2")
#   make test    the tests: every notebook top to bottom, small and at full size, and the pytest tests
PYTHON ?= python3
VENV ?= .venv
ARGS ?=
BIN := $(VENV)/bin

.PHONY: run test env test-assets test-small test-full test-py test-lanes test-quick quick-lanes py-1 py-2 py-3 py-4 py-rest outputs preview

env:
	$(PYTHON) scripts/bootstrap.py --venv $(VENV)

run: env
	$(BIN)/cl-course run $(ARGS)

# The browser tests serve bertviz's scripts from tests/js (npm ci, once); they need Chromium (apt-get install chromium).
test-assets:
	@if [ ! -d tests/js/node_modules ] && command -v npm >/dev/null; then npm ci --prefix tests/js --no-audit --no-fund --loglevel=error; fi

# Every notebook small (as a CPU learner runs it), every notebook at full size within the smoke budget (test-full: cells
# flagged slow and gpu included, on a 124M GPT-2 stand-in and a WikiText folder with a train split, tests/standin.py,
# built once in .cache/standin; offline they stand in for the hub's gpt2 and WikiText's train split), and the pytest tests.
# They run in two lanes side by side, each with half the cores' threads: on 2 cores two one-thread jobs get through more
# than one two-thread job at a time (PyTorch's kernels on these small shapes scale poorly; benchmarks/results/ci_times.json).
# The full-size notebooks stay one at a time (memory); the pytest files come in five parts that fill whichever lane is free,
# longest first (benchmarks/results/ci_times.json has each part's time).
# -k: a failure in one part does not keep the others from running and reporting.
LANE_THREADS := $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n > 3 ? n / 2 : 1 )))
test: env test-assets
	@t=$$(date +%s); $(MAKE) --no-print-directory -k -j2 --output-sync=line OMP_NUM_THREADS=$(LANE_THREADS) MKL_NUM_THREADS=$(LANE_THREADS) \
	  test-lanes; rc=$$?; echo "[time] both lanes: $$(( $$(date +%s) - t )) s"; exit $$rc

test-lanes: test-small test-full py-4 py-3 py-2 py-rest py-1

# The small configuration alone (no full-size notebooks): the small notebooks and the pytest files, in the same two lanes.
test-quick: env test-assets
	@t=$$(date +%s); $(MAKE) --no-print-directory -k -j2 --output-sync=line OMP_NUM_THREADS=$(LANE_THREADS) MKL_NUM_THREADS=$(LANE_THREADS) \
	  quick-lanes; rc=$$?; echo "[time] both lanes: $$(( $$(date +%s) - t )) s"; exit $$rc

quick-lanes: test-small py-1 py-2 py-3 py-4 py-rest

# The small notebooks read the committed headline's runs where a notebook makes the same run (`share_runs`: only runs
# whose identity is what the library makes now); tests/test_shared_runs.py trains one of them again and compares.
HEADLINE := benchmarks/results/cl-course-run-cpu
test-small: env
	@t=$$(date +%s); $(BIN)/python -c "from cl_course.benchmark import share_runs; print('[shared]', len(share_runs('$(HEADLINE)')), 'runs of $(HEADLINE)')" && \
	  PATH="$(abspath $(BIN)):$$PATH" nbdev-test --n-workers 1 --timing; rc=$$?; \
	  echo "[time] test-small: $$(( $$(date +%s) - t )) s"; exit $$rc

STANDIN := .cache/standin
FULL_NBS ?= $(sort $(wildcard nbs/*.ipynb))
# The notebooks that hold little memory at full size share one nbdev-test process (torch and transformers imported once,
# not once each: about 50 s less); every other one runs in its own process: a single worker running them all keeps each
# notebook's 124M models and Fisher estimates until it ends, and was killed out of memory on this 24 GB machine (the
# shared ones peak at about 6 GB together; on its own no notebook needs more than 16 GB).
FULL_SHARED := 00_setup 00a_registry 01_models 02_attention 02a_attention_cost 03_data 03a_blocks 04_training 04b_own_data \
  05_metrics 05a_plots 06_baselines 07_fisher 10_lora 12a_dashboard 13_cli index
FULL_ENV = PATH="$(abspath $(BIN)):$$PATH" CL_COURSE_SIZE=full CL_COURSE_BUDGET=smoke CL_COURSE_MODEL_DIR="$(abspath $(STANDIN))/gpt2" \
  CL_COURSE_DATA="$(abspath $(STANDIN))/wikitext"
test-full: env
	$(BIN)/python tests/standin.py $(STANDIN) >/dev/null
	@failed=; t0=$$(date +%s); shared=; alone=; for nb in $(FULL_NBS); do b=$$(basename $$nb .ipynb); \
	  case " $(FULL_SHARED) " in *" $$b "*) shared="$$shared$${shared:+|}$$b";; *) alone="$$alone $$nb";; esac; done; \
	if [ -n "$$shared" ]; then t=$$(date +%s); \
	  $(FULL_ENV) nbdev-test nbs --file-re "^($$shared)\.ipynb$$" --n-workers 1 --timing --flags "slow gpu" > .cache/test-full-shared.log 2>&1 \
	    || failed="$$failed [one of $$shared]"; sed -E 's/^([^ ]+\.ipynb): ([0-9]+) secs$$/[time] full size \1: \2 s/' .cache/test-full-shared.log; \
	  echo "[time] full size, shared process: $$(( $$(date +%s) - t )) s"; fi; \
	for nb in $$alone; do t=$$(date +%s); \
	  $(FULL_ENV) nbdev-test "$$nb" --n-workers 1 --flags "slow gpu" || failed="$$failed $$nb"; \
	  echo "[time] full size $$(basename $$nb): $$(( $$(date +%s) - t )) s"; \
	done; echo "[time] test-full: $$(( $$(date +%s) - t0 )) s"; if [ -n "$$failed" ]; then echo "failed at full size:$$failed" >&2; exit 1; fi

test-py: env test-assets
	PATH="$(abspath $(BIN)):$$PATH" pytest -q tests --junitxml=.cache/pytest-junit.xml   # per-test times in the XML

# The pytest files in five parts of about equal time (py-rest: every file not named in another part, new ones included).
PY_1 := tests/test_accelerate.py tests/test_seeds.py
PY_2 := tests/test_cli.py tests/test_train.py
PY_3 := tests/test_full_path.py tests/test_widgets_browser.py tests/test_paths.py
PY_4 := tests/test_gpu_check.py tests/test_identity.py tests/test_preview.py tests/test_registry.py
py-1 py-2 py-3 py-4: env
	@t=$$(date +%s); PATH="$(abspath $(BIN)):$$PATH" pytest -q $(PY_$(subst py-,,$@)) --junitxml=.cache/pytest-junit-$@.xml; rc=$$?; \
	  echo "[time] $@: $$(( $$(date +%s) - t )) s"; exit $$rc
py-rest: env
	@t=$$(date +%s); PATH="$(abspath $(BIN)):$$PATH" pytest -q tests $(addprefix --ignore=,$(PY_1) $(PY_2) $(PY_3) $(PY_4)) \
	  --junitxml=.cache/pytest-junit-$@.xml; rc=$$?; echo "[time] $@: $$(( $$(date +%s) - t )) s"; exit $$rc

# The notebooks are stored with the outputs of a small (CPU) run, scrubbed of stderr, timings, widget state and machine
# paths (scripts/outputs.py); `make outputs` refreshes them, cells flagged slow included. `make preview` renders the
# docs pages without Quarto into _preview/ (scripts/preview.py; tests/test_preview.py opens them in Chromium).
outputs: env
	$(BIN)/python scripts/outputs.py $(NBS)

preview: env
	$(BIN)/python scripts/preview.py --out _preview
