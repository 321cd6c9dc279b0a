"""Helpers shared by the test modules; tests import from here, never from each other.

- `support.processes`: stopping child processes reliably.
- `support.protocol_client`: a small Python client of docs/protocol.md (join, tasks, frames).
- `support.serve_cli`: a real ``wnn serve`` process (`start_serve`, `ServeProcess`, `train`).
- `support.e2e`: servers, Node workers and headless Chromium for end-to-end tests.
- `support.hostile`: the hypothesis strategies and harness of the hostile suite.
- `support.strategies`: strategy checkpoint round trips.

``tests/`` is on ``sys.path`` under pytest (rootdir conftest), so modules import ``support.x``.
"""
