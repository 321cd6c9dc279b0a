"""Errors of the merge package: one base class, one for a bad parameter value."""

from __future__ import annotations


class StrategyError(ValueError):
    """A strategy cannot be found, loaded, configured or restored; the message says why."""


class ParamError(StrategyError):
    """A strategy parameter has a bad value; `param` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
