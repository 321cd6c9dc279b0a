# Two entry points, both idempotent and both doing their own set-up:
#   make run   - install everything, then serve the default model (digits) with local workers
#   make test  - install everything (Chromium included), then run the Python and JavaScript tests
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := .make

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

$(STAMP)/chromium:
	@mkdir -p $(STAMP)
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	@touch $@

run: setup
	$(VENV)/bin/wnn serve model_specs/digits_mlp.json --data data_modules/digits.py --local-workers 2 --state-dir state/digits

test: setup $(STAMP)/chromium
	$(VENV)/bin/ruff check webnn tests bench
	cd client_js && npm test
	$(VENV)/bin/pytest -q

clean:
	rm -rf $(VENV) $(STAMP) client_js/node_modules
