"""The one error of every settings reader: `ConfigError`, a list of `Problem`s.

A `Problem` is a string ``"<dotted path>: <message>"`` (e.g. ``serve.toml``'s
``models[1].eval_quorum: must be >= 1, got 0``) that also carries `path` and `message`, so code
that compares or prints problems as strings keeps working. `ConfigError` holds every problem
found (never only the first) and names its `source` (a file name, ``ServeConfig``, ...).
"""

from __future__ import annotations

from collections.abc import Iterable


class Problem(str):
    """One problem: ``f"{path}: {message}"``, with `path` and `message` as attributes.

    `path` is dotted with indices (``strategies[2].params.trim``); an empty path means the
    document as a whole (then the string is the message alone).
    """

    path: str
    message: str

    def __new__(cls, path: str, message: str) -> Problem:
        self = super().__new__(cls, f"{path}: {message}" if path else message)
        self.path = path
        self.message = message
        return self

    @classmethod
    def parse(cls, text: str) -> Problem:
        """A `Problem` from ``"path: message"`` text (a plain message when it has no path)."""
        if isinstance(text, Problem):
            return text
        head, sep, tail = text.partition(": ")
        if sep and head and " " not in head:
            return cls(head, tail)
        return cls("", text)

    def under(self, prefix: str) -> Problem:
        """This problem with `prefix` put in front of its path (``models[0]`` + ``seed``)."""
        if not prefix:
            return self
        if not self.path:
            return Problem(prefix, self.message)
        joiner = "" if self.path.startswith("[") else "."
        return Problem(f"{prefix}{joiner}{self.path}", self.message)


class ConfigError(ValueError):
    """Settings are invalid; `problems` lists every `Problem` found, `source` says where.

    The message is ``"<source>: <problem>"`` for one problem, else
    ``"<source>: N problems:"`` and one indented line per problem.
    """

    def __init__(self, problems: Iterable[str], source: str | None = None) -> None:
        self.problems: list[Problem] = [Problem.parse(p) for p in problems]
        self.source = source or "settings"
        super().__init__(self._render())

    def _render(self) -> str:
        if len(self.problems) == 1:
            return f"{self.source}: {self.problems[0]}"
        lines = "\n  ".join(self.problems)
        return f"{self.source}: {len(self.problems)} problems:\n  {lines}"

    def under(self, prefix: str) -> ConfigError:
        """The same problems, each path under `prefix`."""
        return ConfigError([p.under(prefix) for p in self.problems], self.source)
