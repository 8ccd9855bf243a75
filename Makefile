# Two commands do all the set-up on a fresh machine:
#   make up     the local stack (prepares data, trains the first model if none exists, serves predict/feedback,
#               retrains on feedback)
#   make test   the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
# The runs console's browser tests drive Debian's chromium (never a downloaded browser).
BROWSER_STAMP := $(VENV)/.chromium-stamp
# checkov (tests/integration/test_checkov.py) pins dependencies that conflict with the main venv: its own venv.
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-stamp

.PHONY: setup up test lint bench-train bench-serving bench-retrain bench-feedback bench-tuning bench-speed clean

setup: $(STAMP) $(NODE_STAMP) $(BROWSER_STAMP) $(CHECKOV_STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt -e .
	touch $@

$(CHECKOV_STAMP): requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-checkov.txt
	touch $@

$(BROWSER_STAMP): $(STAMP)
	command -v chromium || (apt-get update && apt-get install -y --no-install-recommends chromium)
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --legacy-peer-deps --no-audit --no-fund --loglevel=error
	touch $@

up: $(STAMP) $(NODE_STAMP)
	$(VENV)/bin/autobert up

test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

bench-train: $(STAMP)
	$(PY) bench/train_quality.py --keep-model .autobert/bench-model

bench-serving: $(STAMP)
	$(PY) bench/serving.py --model-dir .autobert/bench-model

bench-retrain: $(STAMP) $(NODE_STAMP)
	$(PY) bench/retrain_loop.py

bench-feedback: $(STAMP) $(NODE_STAMP)
	$(PY) bench/feedback_learning.py

bench-tuning: $(STAMP)
	$(PY) bench/tuning.py

# Fine-tuning samples/s before and after issue 12's levers, in one run; --avx2 approximates an AVX2-only CPU.
bench-speed: $(STAMP)
	$(PY) bench/train_speed.py --avx2

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules .autobert .pytest_cache
