"""Character-level next-character prediction from any text file.

Each example is a window of `seq_len` consecutive characters (x: int32 indices, shape (seq_len,));
its label is the index of the character that follows (y: int32). The text is encoded with a fixed
vocabulary, the one of ``model_specs/text_lstm.json``:

- index 0: any character not in the vocabulary (non-ASCII letters, control characters, ...);
- index 1: newline (``\\r\\n`` and ``\\r`` count as newline; a tab counts as a space);
- indices 2..96: the printable ASCII characters space ``' '`` (2) to tilde ``'~'`` (96), in code
  order, i.e. index = ord(c) - 30.

So the vocabulary has 97 entries; the model's embedding takes 97 input indices and its output layer
has 97 units. The first ``1 - validation_fraction`` of the characters give the training windows, the
rest the validation windows, so no validation target is seen in training. Training batches draw
windows (stride 1) in the seeded order of `webnn.data.batch_indices`; validation goes through its
windows in order.

Options: ``path`` (the text file, UTF-8; required), ``seq_len`` (default 40),
``validation_fraction`` (default 0.1), ``validation_limit`` (use only the first N validation
windows; 0, the default: all).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from webnn.data import Batch, DataModuleError, IterableDataset, batch_indices, chunk_bounds

UNKNOWN = 0
NEWLINE = 1
FIRST_PRINTABLE, LAST_PRINTABLE = 0x20, 0x7E
VOCABULARY_SIZE = 2 + LAST_PRINTABLE - FIRST_PRINTABLE + 1  # 97


def vocabulary() -> list[str]:
    """The character of each index; index 0 (unknown) is shown as U+FFFD."""
    printable = [chr(c) for c in range(FIRST_PRINTABLE, LAST_PRINTABLE + 1)]
    return ["\ufffd", "\n", *printable]


def encode(text: str) -> np.ndarray:
    """`text` as int32 vocabulary indices (see the module docstring)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    table = np.full(128, UNKNOWN, dtype=np.int32)
    table[ord("\n")] = NEWLINE
    table[FIRST_PRINTABLE:LAST_PRINTABLE + 1] = np.arange(2, VOCABULARY_SIZE, dtype=np.int32)
    return np.where(codes < 128, table[np.minimum(codes, 127)], UNKNOWN).astype(np.int32)


def decode(indices: np.ndarray) -> str:
    """Vocabulary indices back to text (unknown characters as U+FFFD)."""
    chars = vocabulary()
    return "".join(chars[int(i)] for i in np.asarray(indices).reshape(-1))


class TextDataset(IterableDataset):
    """Next-character windows over an encoded text: training from ``tokens[:split]``, validation
    from ``tokens[split:]``."""

    def __init__(self, tokens: np.ndarray, seq_len: int, split: int,
                 validation_limit: int = 0) -> None:
        self.tokens = np.ascontiguousarray(tokens, dtype=np.int32)
        self.seq_len = seq_len
        self.split = split
        self.num_train = split - seq_len
        available = len(self.tokens) - split - seq_len
        self.num_validation = min(available, validation_limit) if validation_limit else available
        self.example_shape = (seq_len,)
        self.x_dtype = np.dtype(np.int32)
        self.y_shape = ()
        self.y_dtype = np.dtype(np.int32)
        self._window = np.arange(seq_len, dtype=np.int64)

    def train_batches(self, batch_size: int, seed: int, start: int = 0) -> Iterator[Batch]:
        indices = batch_indices(self.num_train, batch_size, seed, start)
        return (self._windows(index) for index in indices)

    def validation_chunks(self, chunk_size: int) -> Iterator[Batch]:
        bounds = chunk_bounds(self.num_validation, chunk_size)
        return (self._windows(np.arange(self.split + begin, self.split + stop))
                for begin, stop in bounds)

    def _windows(self, starts: np.ndarray) -> Batch:
        x = self.tokens[starts[:, None] + self._window]
        return Batch(x, self.tokens[starts + self.seq_len])


def load(path: str, seq_len: int = 40, validation_fraction: float = 0.1,
         validation_limit: int = 0) -> TextDataset:
    if seq_len < 1:
        raise DataModuleError(f"option seq_len must be >= 1, got {seq_len}")
    if not 0.0 < validation_fraction < 1.0:
        raise DataModuleError(f"option validation_fraction must be in (0, 1), got "
                              f"{validation_fraction}")
    if validation_limit < 0:
        raise DataModuleError(f"option validation_limit must be >= 0, got {validation_limit}")
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataModuleError(f"text file not found: {file.resolve()}")
    tokens = encode(file.read_text(encoding="utf-8", errors="replace"))
    split = len(tokens) - int(len(tokens) * validation_fraction)
    needed = seq_len + 1
    if split < needed or len(tokens) - split < needed:
        least = int(np.ceil(needed / min(validation_fraction, 1 - validation_fraction)))
        raise DataModuleError(f"{file} holds {len(tokens)} characters; with seq_len {seq_len} and "
                              f"validation_fraction {validation_fraction} both parts need "
                              f"{needed} characters: at least about {least} in all")
    return TextDataset(tokens, seq_len, split, validation_limit)
