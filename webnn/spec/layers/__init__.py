"""The registry of layer kinds: spec ``type`` -> kind class, and TF.js class name -> kind class."""

from __future__ import annotations

from webnn.spec.layers.base import (
    Inference,
    LayerKind,
    Shape,
    WeightDef,
    conv_length,
    describe,
)
from webnn.spec.layers.conv import Conv1D, Conv2D
from webnn.spec.layers.core import Activation, Dense, Dropout, Flatten, Reshape
from webnn.spec.layers.embedding import Embedding
from webnn.spec.layers.normalization import BatchNormalization
from webnn.spec.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPooling1D,
    MaxPooling2D,
)
from webnn.spec.layers.recurrent import GRU, LSTM, SimpleRNN

KINDS: dict[str, type[LayerKind]] = {kind.type: kind for kind in (
    Dense, Conv2D, Conv1D, MaxPooling2D, AveragePooling2D, MaxPooling1D, AveragePooling1D,
    GlobalAveragePooling2D, GlobalMaxPooling2D, GlobalAveragePooling1D, GlobalMaxPooling1D,
    Flatten, Reshape, Dropout, Activation, BatchNormalization, Embedding, SimpleRNN, LSTM, GRU,
)}
"""Every supported layer kind by spec ``type``."""

BY_CLASS_NAME: dict[str, type[LayerKind]] = {kind.class_name: kind for kind in KINDS.values()}
"""Every supported layer kind by TF.js class name."""

__all__ = ["BY_CLASS_NAME", "KINDS", "Inference", "LayerKind", "Shape", "WeightDef",
           "conv_length", "describe"]
