"""Errors of the merge package: one base class, one for a bad parameter value."""

from __future__ import annotations

from collections.abc import Iterable

from webnn.settings.errors import ConfigError, Problem


class StrategyError(ValueError):
    """A strategy cannot be found, loaded, configured or restored; the message says why."""


class ParamError(StrategyError, ConfigError):
    """A strategy parameter has a bad value; `param` names it (the first, when several are bad).

    Also a `webnn.settings.ConfigError`: `problems` lists every bad parameter, each named
    ``strategy.<name>.<param>`` (or the message alone when a strategy raised it itself)."""

    def __init__(self, param: str, message: str, problems: Iterable[str] = ()) -> None:
        ValueError.__init__(self, message)
        self.param = param
        self.source = "strategy"
        self.problems = [Problem.parse(p) for p in problems] or [Problem.parse(message)]
