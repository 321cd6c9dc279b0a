# Two entry points, both idempotent and both doing their own set-up:
#   make run   - install everything, then serve the default model (digits) with local workers
#   make test  - install everything (Chromium included), then run the Python and JavaScript tests
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := .make
KERAS_VENV := .venv-keras

.PHONY: run test setup lint clean

setup: $(STAMP)/python $(STAMP)/npm

$(STAMP)/python: pyproject.toml
	@mkdir -p $(STAMP)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

$(STAMP)/npm: client_js/package.json client_js/package-lock.json
	@mkdir -p $(STAMP)
	cd client_js && npm ci --no-audit --no-fund
	@touch $@

# The optional Keras extra (tensorflowjs: TensorFlow, JAX, ~3 GB) lives in its own venv so the
# main one stays small; only `make test` needs it.
$(STAMP)/keras: pyproject.toml
	@mkdir -p $(STAMP)
	test -x $(KERAS_VENV)/bin/python || $(PYTHON) -m venv $(KERAS_VENV)
	$(KERAS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(KERAS_VENV)/bin/python -m pip install --quiet -e '.[keras,test]'
	@touch $@

$(STAMP)/chromium:
	@mkdir -p $(STAMP)
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	@touch $@

run: setup
	$(VENV)/bin/wnn serve model_specs/digits_mlp.json --data data_modules/digits.py --local-workers 2 --state-dir state/digits

test: setup $(STAMP)/chromium $(STAMP)/keras
	$(VENV)/bin/ruff check webnn tests bench examples data_modules
	cd client_js && npm test
	$(VENV)/bin/pytest -q
	$(KERAS_VENV)/bin/pytest -q tests/test_keras_*.py

clean:
	rm -rf $(VENV) $(KERAS_VENV) $(STAMP) client_js/node_modules
