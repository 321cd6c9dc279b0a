#!/usr/bin/env bash
# Packs what the benchmarks need on the 16-core device machine, which has Python 3.12 with numpy,
# aiohttp, click, prometheus-client, matplotlib and scikit-learn but no network, no Node and no
# jsonschema or pydantic, into .devkit/ (git-ignored; name it in the device call's `carry`):
#   .devkit/wheels/          the missing Python packages as CPython 3.12 manylinux wheels
#   .devkit/node.xz          this machine's Node binary (unless NO_NODE=1)
#   .devkit/node_modules.tar.xz  client_js/node_modules without source maps, typings, minified
#                            and ES2017 bundles (what the Node client imports), unless NO_NODE=1
# and `bench/device_setup.sh` installs them there, in every call (each call gets a fresh copy).
# The device tool's limit is 64 MiB for the tree and the carried paths together: the wheels are
# about 6 MB, Node about 24 MB, the modules about 4 MB.
# Usage, here (with network):  bash bench/device_kit.sh   [NO_NODE=1 for server-only runs]
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.devkit
mkdir -p "$KIT/wheels"
PY=${PYTHON:-.venv/bin/python}
# pydantic (settings), jsonschema (specs) and what they need; uvloop for --loop uvloop; redis for
# the scale-out benchmarks. One version each: pip installs them with --no-deps.
PACKAGES="jsonschema jsonschema-specifications referencing rpds-py attrs
          pydantic pydantic-core annotated-types typing-extensions typing-inspection
          uvloop redis"
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$KIT/wheels" $PACKAGES
if [ -z "${NO_NODE:-}" ]; then
  [ -f "$KIT/node.xz" ] || xz -9 -T0 -c "$(command -v node)" > "$KIT/node.xz"
  [ -d client_js/node_modules ] || (cd client_js && npm ci --silent)
  tar -C client_js -cf - \
      --exclude='*.map' --exclude='*.d.ts' --exclude='*.min.js' --exclude='*es2017*' \
      --exclude='*fesm*' --exclude='core-js' --exclude='chart.js' node_modules \
    | xz -9 -T0 > "$KIT/node_modules.tar.xz"
fi
du -sh "$KIT"/* 
