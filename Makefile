# make book: the classroom study, executed notebooks, the Jupyter Book in _build/html.
# make test: the test suite. Both create .venv from nothing when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= classroom
RUN_DIR ?= runs/$(PROFILE)
EXECUTED ?= book/executed
NOTEBOOKS := 01_train 02_unlearn 03_figure1 04_figure2 05_beyond 06_modes 07_simulation 08_claims 09_deepunlearn 10_ltr 11_lm 12_analyse
# two streams on the cores: the image study and its pages, and beside them the pages that run their
# own study or none (learning to rank, language models, the simulation, analyse), which fill the
# cores the image stream leaves idle (its pages' single-threaded analysis, kernel starts, tails)
BESIDE := 10_ltr 11_lm 07_simulation 12_analyse
MAIN := $(filter-out $(BESIDE),$(NOTEBOOKS))
MATHJAX := book/_extra/mathjax

.PHONY: book test test-fast notebooks paper bench bench-floor bench-gpu portability clean chromium

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(MATHJAX): $(STAMP)
	rm -rf $@ && mkdir -p $(dir $@)
	cp -r "$$($(PY) -c 'import mathjax, os; print(os.path.join(os.path.dirname(mathjax.__file__), "static", "mathjax", "es5"))')" $@

notebooks: $(STAMP)
	mkdir -p $(EXECUTED)
	run() { echo "== $$1 ($(PROFILE))"; \
	  MU_CORE_EXECUTED=$(EXECUTED) $(VENV)/bin/papermill notebooks/$$1.ipynb $(EXECUTED)/$$1.ipynb --cwd . \
	    -p profile $(PROFILE) -p run_dir $(RUN_DIR) $$2 || { \
	    echo "notebook $$1 failed; the executed copy is kept in $(EXECUTED)/$$1.ipynb"; return 1; }; }; \
	( for nb in $(BESIDE); do run $$nb --no-progress-bar || exit 1; done; echo "== beside: done" ) & beside=$$!; \
	for nb in $(MAIN); do run $$nb --progress-bar || { kill $$beside 2>/dev/null; exit 1; }; done; \
	wait $$beside
	$(PY) -m mu_core tidy $(EXECUTED)/*.ipynb

book: notebooks $(MATHJAX)
	$(PY) -m mu_core tables --out book/generated
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

# The book's browser test needs headless Chromium (Debian's package; root or sudo to install).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "== installing Chromium for the book's browser test (apt-get)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) chromium
	$(PY) -m pytest -q

# The development loop: every domain's fast tests (not those marked slow: whole runs, fresh
# processes, the book), under 3 minutes. CI runs make test, which runs everything.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) benchmarks/cpu_engine_vs_reference.py

# The cost of one classroom training step, as fit does it and with nothing but its arithmetic
# (add --run DIR --time-log FILE to project a timed classroom run; benchmarks/README.md).
bench-floor: $(STAMP)
	$(PY) benchmarks/cpu_step_floor.py

# On a GPU machine: ResNet-18 training throughput, reference style against train.fit (benchmarks/README.md).
bench-gpu: $(STAMP)
	$(PY) benchmarks/gpu.py

# How far results travel between numerical paths (another processor's stand-ins): the book's
# studies on each path, compared (benchmarks/portability.py; about an hour on 2 cores).
portability: $(STAMP)
	$(PY) benchmarks/portability.py

paper: $(STAMP)
	$(PY) -m mu_core run --profile paper --run-dir runs/paper

clean:
	rm -rf _build book/executed book/generated $(MATHJAX)
