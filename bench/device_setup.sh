#!/usr/bin/env bash
# On the device machine, at the start of every call: install what `bench/device_kit.sh` packed
# into .devkit/ (carried with the call), then `export PYTHONPATH=$PWD` in the calling shell so
# that `python3 -m` and the benchmarks' servers import this tree's webnn.
#   NO_NODE=1 bash bench/device_setup.sh && export PYTHONPATH=$PWD && ...
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .devkit/wheels/*.whl
if [ -z "${NO_NODE:-}" ]; then
  xz -dc .devkit/node.xz > /usr/local/bin/node && chmod +x /usr/local/bin/node
  tar -C client_js -xJf .devkit/node_modules.tar.xz
  node --version
fi
python3 -c 'import jsonschema, pydantic, numpy, aiohttp; print("python", __import__("sys").version.split()[0], "numpy", numpy.__version__, "aiohttp", aiohttp.__version__)'
