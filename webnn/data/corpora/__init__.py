"""Text corpora bundled with webnn (package data), so text workloads run the same everywhere.

One corpus today, ``shakespeare``: Tiny Shakespeare, the character-level language-model benchmark
of char-rnn (Karpathy 2015): 1,115,394 bytes of ASCII text, about 40,000 lines of several
Shakespeare plays as speeches (``NAME:`` on a line of its own, then the speech, then a blank
line). It is public domain; ``README.md`` in this folder says where the copy comes from. It is
stored gzipped (``gzip -n -9``, no name or time in the header, so the bytes are reproducible);
`read_corpus` checks the text against the SHA-256 of the uncompressed file.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

FOLDER = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Corpus:
    """A bundled corpus: its file (gzipped, in this folder), its size and the SHA-256 of the
    uncompressed bytes."""

    name: str
    file: str
    size: int
    sha256: str

    @property
    def path(self) -> Path:
        return FOLDER / self.file


CORPORA: dict[str, Corpus] = {
    "shakespeare": Corpus("shakespeare", "tinyshakespeare.txt.gz", 1_115_394,
                          "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
}


class CorpusError(ValueError):
    """An unknown corpus name, or a bundled file that is missing or not the recorded bytes."""


def corpus(name: str) -> Corpus:
    """The bundled corpus called `name`; `CorpusError` names the known ones otherwise."""
    try:
        return CORPORA[name]
    except KeyError:
        raise CorpusError(f"unknown corpus {name!r}; bundled: {', '.join(sorted(CORPORA))}"
                          ) from None


def read_corpus(name: str) -> bytes:
    """The uncompressed bytes of the bundled corpus `name`, checked against its SHA-256."""
    entry = corpus(name)
    if not entry.path.is_file():
        raise CorpusError(f"corpus {name!r}: {entry.path} is missing from the installed package")
    data = gzip.decompress(entry.path.read_bytes())
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != entry.size or digest != entry.sha256:
        raise CorpusError(f"corpus {name!r}: {entry.path} holds {len(data)} bytes with SHA-256 "
                          f"{digest}, expected {entry.size} bytes with {entry.sha256}")
    return data
