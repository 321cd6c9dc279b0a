"""Problems found in a model spec, the exception that carries them, and name suggestions."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: `path` is a JSON path like ``$.layers[2].units``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SpecError(ValueError):
    """A model spec that cannot be used; `problems` lists every problem found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in model spec:\n{lines}")


def _fold(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def suggest(name: str, choices: Iterable[str], limit: int = 3) -> list[str]:
    """Choices close to `name` (difflib ratio >= 0.6 and >= 0.9 x the best), ignoring case and
    underscores (``sparse_categorical...`` finds the camelCase spelling), best first."""
    options = list(dict.fromkeys(choices))
    folded = {_fold(c): c for c in options}
    exact = folded.get(_fold(name))
    if exact is not None:
        return [exact]
    close = difflib.get_close_matches(_fold(name), list(folded), n=limit, cutoff=0.6)
    if not close:
        return []
    # keep only the names about as close as the best one
    best = difflib.SequenceMatcher(None, _fold(name), close[0]).ratio()
    return [folded[c] for c in close
            if difflib.SequenceMatcher(None, _fold(name), c).ratio() >= 0.9 * best]


def unknown_name(kind: str, name: object, choices: Iterable[str]) -> str:
    """``unknown activation 'rleu' (did you mean 'relu'?)``, or the full list if none is close."""
    options = list(choices)
    close = suggest(name, options) if isinstance(name, str) else []
    if close:
        hint = either(close)
        return f"unknown {kind} {name!r} (did you mean {hint}?)"
    return f"unknown {kind} {name!r}; expected one of: {', '.join(options)}"


def json_path(parts: Iterable[str | int], root: str = "$") -> str:
    """Join path parts into a JSON path: ``("layers", 2, "units")`` -> ``$.layers[2].units``."""
    out = root
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            out += "[" + repr(part) + "]"
    return out


def either(names: list[str]) -> str:
    """``'a'``, ``'a' or 'b'``, ``'a', 'b' or 'c'``."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
