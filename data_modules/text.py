"""Character-level next-character prediction from a text: a file or a bundled corpus.

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

Options: ``path`` (a text file, UTF-8; a name ending in ``.gz`` is read through gzip) or
``corpus`` (a corpus bundled with webnn: ``shakespeare``, Tiny Shakespeare, 1,115,394 characters;
see `webnn.data.corpora`), exactly one of the two; ``seq_len`` (default 40),
``validation_fraction`` (default 0.1), ``validation_limit`` (use only the first N validation
windows; 0, the default: all); ``keys`` (``""``, the default: none; ``speaker``: for the
``by_key`` partition, each training window's key is the speaking role of the character it
predicts, as in LEAF's federated Shakespeare (Caldas et al. 2018): a speech starts with a line
``NAME:`` at the start of the text or after a blank line; text before the first such line has
the role ``""``). Key k is the role ``dataset.key_names[k]``.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from webnn.data import Batch, DataModuleError, IterableDataset, batch_indices, chunk_bounds

UNKNOWN = 0
NEWLINE = 1
FIRST_PRINTABLE, LAST_PRINTABLE = 0x20, 0x7E
VOCABULARY_SIZE = 2 + LAST_PRINTABLE - FIRST_PRINTABLE + 1  # 97
KEY_KINDS = ("", "speaker")
SPEAKER_LINE = re.compile(r"(?:\A|(?<=\n\n))([^\n:][^\n]*):\n")
"""A speech's first line, ``NAME:``, at the start of the text or after a blank line."""


def vocabulary() -> list[str]:
    """The character of each index; index 0 (unknown) is shown as U+FFFD."""
    printable = [chr(c) for c in range(FIRST_PRINTABLE, LAST_PRINTABLE + 1)]
    return ["\ufffd", "\n", *printable]


def normalise(text: str) -> str:
    """``\\r\\n`` and ``\\r`` as ``\\n``, tabs as spaces: one character per token."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")


def encode(text: str) -> np.ndarray:
    """`text` as int32 vocabulary indices (see the module docstring)."""
    codes = np.frombuffer(normalise(text).encode("utf-32-le"), dtype="<u4")
    table = np.full(128, UNKNOWN, dtype=np.int32)
    table[ord("\n")] = NEWLINE
    table[FIRST_PRINTABLE:LAST_PRINTABLE + 1] = np.arange(2, VOCABULARY_SIZE, dtype=np.int32)
    return np.where(codes < 128, table[np.minimum(codes, 127)], UNKNOWN).astype(np.int32)


def decode(indices: np.ndarray) -> str:
    """Vocabulary indices back to text (unknown characters as U+FFFD)."""
    chars = vocabulary()
    return "".join(chars[int(i)] for i in np.asarray(indices).reshape(-1))


def speakers(text: str) -> tuple[np.ndarray, list[str]]:
    """The speaking role of every character of normalised `text`: (int32 role per character,
    role names); a role's span starts at its ``NAME:`` line and ends where the next one starts;
    role 0 is ``""`` (the text before the first speech)."""
    names = [""]
    index: dict[str, int] = {"": 0}
    starts, roles = [0], [0]
    for match in SPEAKER_LINE.finditer(text):
        name = match.group(1)
        if name not in index:
            index[name] = len(names)
            names.append(name)
        starts.append(match.start())
        roles.append(index[name])
    bounds = np.array(starts[1:] + [len(text)], dtype=np.int64)
    per_char = np.repeat(np.array(roles, dtype=np.int32), np.diff(np.r_[0, bounds]))
    return per_char, names


class TextDataset(IterableDataset):
    """Next-character windows over an encoded text: training from ``tokens[:split]``, validation
    from ``tokens[split:]``; `roles` (one key per character) gives the training windows' keys."""

    def __init__(self, tokens: np.ndarray, seq_len: int, split: int,
                 validation_limit: int = 0, roles: np.ndarray | None = None,
                 key_names: list[str] | None = None) -> None:
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
        self.roles = roles
        self.key_names = key_names or []
        self._window = np.arange(seq_len, dtype=np.int64)

    def train_batches(self, batch_size: int, seed: int, start: int = 0) -> Iterator[Batch]:
        indices = batch_indices(self.num_train, batch_size, seed, start)
        return (self._windows(index) for index in indices)

    def validation_chunks(self, chunk_size: int) -> Iterator[Batch]:
        bounds = chunk_bounds(self.num_validation, chunk_size)
        return (self._windows(np.arange(self.split + begin, self.split + stop))
                for begin, stop in bounds)

    def train_examples(self, index: np.ndarray) -> Batch:
        """Training windows by position (window i starts at character i)."""
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= self.num_train):
            raise IndexError(f"training window index out of range 0..{self.num_train - 1}")
        return self._windows(index)

    def train_keys(self) -> np.ndarray | None:
        """With ``keys=speaker``: the role of the character each training window predicts."""
        if self.roles is None:
            return None
        return self.roles[self.seq_len:self.split]

    def _windows(self, starts: np.ndarray) -> Batch:
        x = self.tokens[starts[:, None] + self._window]
        return Batch(x, self.tokens[starts + self.seq_len])


def read_text(path: str = "", corpus: str = "") -> tuple[str, str]:
    """The text of `path` (gunzipped when it ends in ``.gz``) or of the bundled `corpus`, and a
    label for messages."""
    if bool(path) == bool(corpus):
        raise DataModuleError("give exactly one of the options path (a text file) and corpus "
                              "(a bundled corpus: shakespeare)"
                              + (f"; got path={path!r} and corpus={corpus!r}" if path else ""))
    if corpus:
        from webnn.data.corpora import CorpusError, read_corpus

        try:
            return read_corpus(corpus).decode("utf-8", errors="replace"), f"corpus {corpus!r}"
        except CorpusError as error:
            raise DataModuleError(f"option corpus: {error}") from None
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataModuleError(f"text file not found: {file.resolve()}")
    if file.name.endswith(".gz"):
        try:
            data = gzip.decompress(file.read_bytes())
        except (OSError, EOFError) as error:
            raise DataModuleError(f"text file {file}: not a readable gzip file ({error})"
                                  ) from None
        return data.decode("utf-8", errors="replace"), str(file)
    return file.read_text(encoding="utf-8", errors="replace"), str(file)


def load(path: str = "", seq_len: int = 40, validation_fraction: float = 0.1,
         validation_limit: int = 0, corpus: str = "", keys: str = "") -> TextDataset:
    if seq_len < 1:
        raise DataModuleError(f"option seq_len must be >= 1, got {seq_len}")
    if not 0.0 < validation_fraction < 1.0:
        raise DataModuleError(f"option validation_fraction must be in (0, 1), got "
                              f"{validation_fraction}")
    if validation_limit < 0:
        raise DataModuleError(f"option validation_limit must be >= 0, got {validation_limit}")
    if keys not in KEY_KINDS:
        raise DataModuleError(f"option keys must be one of {', '.join(map(repr, KEY_KINDS))}, "
                              f"got {keys!r}")
    text, label = read_text(path, corpus)
    text = normalise(text)
    tokens = encode(text)
    split = len(tokens) - int(len(tokens) * validation_fraction)
    needed = seq_len + 1
    if split < needed or len(tokens) - split < needed:
        least = int(np.ceil(needed / min(validation_fraction, 1 - validation_fraction)))
        raise DataModuleError(f"{label} holds {len(tokens)} characters; with seq_len {seq_len} and "
                              f"validation_fraction {validation_fraction} both parts need "
                              f"{needed} characters: at least about {least} in all")
    roles, names = None, None
    if keys == "speaker":
        roles, names = speakers(text)
        if len(names) == 1:
            raise DataModuleError(f"option keys=speaker: {label} has no speech headings (a line "
                                  "'NAME:' at the start or after a blank line)")
    return TextDataset(tokens, seq_len, split, validation_limit, roles, names)
