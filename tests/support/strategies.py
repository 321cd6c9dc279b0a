"""Helpers shared by the strategy tests."""

from __future__ import annotations

import io
import json

import numpy as np

from webnn.merge import StrategyState


def checkpoint(state: StrategyState) -> StrategyState:
    """Round-trip a state through the bytes a checkpoint holds (npz arrays, JSON meta), as
    `webnn.server.store` writes them."""
    buffer = io.BytesIO()
    np.savez(buffer, **state.arrays)
    buffer.seek(0)
    with np.load(buffer) as loaded:
        arrays = {name: loaded[name] for name in loaded.files}
    return StrategyState(arrays, json.loads(json.dumps(state.meta)))
