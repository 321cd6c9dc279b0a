"""Where the browser client, the Node worker and the examples are: in the installed package or in
the checkout.

A wheel carries them as package data (``webnn/_client/``, ``webnn/_examples/``; `setup.py` copies
them at build time). An editable install (``pip install -e .``) runs from the checkout, whose
``client_js/``, ``model_specs/`` and ``data_modules/`` sit next to the ``webnn`` package. The
installed copy wins when both exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT_DIR = PACKAGE_DIR.parent
CLIENT_MARKER = Path("src") / "index.html"
"""A folder is a client folder when it holds this file (the volunteer page)."""
DEFAULT_SPEC = "digits_mlp.json"
DEFAULT_DATA = "digits.py"


def client_dir() -> Path:
    """The client folder (``src/``, ``bin/wnn-worker.js``, ``node_modules/``): the package's
    ``_client`` when installed from a wheel, else the checkout's ``client_js``."""
    installed = PACKAGE_DIR / "_client"
    if (installed / CLIENT_MARKER).is_file():
        return installed
    return CHECKOUT_DIR / "client_js"


def examples_dir() -> Path:
    """The folder holding ``model_specs/`` and ``data_modules/``: the package's ``_examples`` when
    installed from a wheel, else the checkout."""
    installed = PACKAGE_DIR / "_examples"
    if (installed / "model_specs").is_dir():
        return installed
    return CHECKOUT_DIR


@dataclass(frozen=True)
class Example:
    """A bundled example: its model spec and its data module (both file paths)."""

    spec: Path
    data: Path


def default_example() -> Example:
    """The example `wnn serve` serves when given no SPEC: digits_mlp on the digits data."""
    root = examples_dir()
    return Example(spec=root / "model_specs" / DEFAULT_SPEC,
                   data=root / "data_modules" / DEFAULT_DATA)
