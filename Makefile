# Two entry points, both idempotent and both doing their own set-up:
#   make run   - install everything, then serve the default model (digits) with local workers
#   make test  - install everything (Chromium and the Keras extra included), then run all tests
# Each set-up step leaves its stamp inside what it installed, so deleting a venv or node_modules
# makes the next call install it again.
PYTHON     ?= python3
VENV       := .venv
KERAS_VENV := .venv-keras
NODE_DIR   := client_js/node_modules
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test check docs setup chromium clean

setup: $(VENV)/.installed $(NODE_DIR)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test,privacy,docs]'
	@touch $@

$(NODE_DIR)/.installed: client_js/package.json client_js/package-lock.json
	cd client_js && npm ci --no-audit --no-fund
	@touch $@

# The optional Keras extra (tensorflowjs: TensorFlow, JAX, ~3 GB) lives in its own venv so the
# main one stays small; only `make test` needs it.
$(KERAS_VENV)/.installed: pyproject.toml
	test -x $(KERAS_VENV)/bin/python || $(PYTHON) -m venv $(KERAS_VENV)
	$(KERAS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(KERAS_VENV)/bin/python -m pip install --quiet -e '.[keras,test]'
	@touch $@

# Debian's Chromium for the browser tests (never a browser download: see docs).
chromium:
	command -v chromium >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null)

# Debian's Redis 7 for the scale-out tests (they start their own redis-server on a free
# loopback port; never a system service).
redis:
	command -v redis-server >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server >/dev/null)

run: setup
	$(VENV)/bin/wnn serve model_specs/digits_mlp.json --data data_modules/digits.py \
	  --local-workers 2 --state-dir state/digits

# The fast lane while working: lint, types and the tests that need no browser, no Node training
# run and no long soak (markers e2e and slow).
check: setup
	$(VENV)/bin/ruff check webnn tests bench examples data_modules
	$(VENV)/bin/mypy webnn
	$(VENV)/bin/pytest -q -m "not e2e and not slow"

# The documentation site (mkdocs.yml), built strictly into site/ (ignored by git): a broken link
# or anchor, a page left out of the nav or a broken link in README.md fails the build.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# The docs build is a step of its own here, so pytest leaves out its copy (marker docs), which is
# there for `make check`.
test: setup chromium redis $(KERAS_VENV)/.installed
	$(VENV)/bin/ruff check webnn tests bench examples data_modules
	$(VENV)/bin/mypy webnn
	$(MAKE) docs
	cd client_js && npm test
	$(VENV)/bin/pytest -q -m "not docs"
	$(KERAS_VENV)/bin/pytest -q tests/test_keras_*.py

clean:
	rm -rf $(VENV) $(KERAS_VENV) $(NODE_DIR) .make
