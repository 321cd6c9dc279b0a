"""Merge strategies: the interface (`Strategy`, `ModelState`, `Update`), registry, built-ins."""

from webnn.merge.base import ModelState, Strategy, StrategyState, Update
from webnn.merge.errors import ParamError, StrategyError
from webnn.merge.params import Param
from webnn.merge.registry import (
    BUILTIN_STRATEGIES,
    ENTRY_POINT_GROUP,
    StrategyInfo,
    available_strategies,
    builtin_strategies,
    create_strategy,
    get_strategy,
    strategy_info,
)
from webnn.merge.webnn_strategies import WebNNAverage, WebNNMimic, WebNNWeighted

__all__ = [
    "BUILTIN_STRATEGIES",
    "ENTRY_POINT_GROUP",
    "ModelState",
    "Param",
    "ParamError",
    "Strategy",
    "StrategyError",
    "StrategyInfo",
    "StrategyState",
    "Update",
    "WebNNAverage",
    "WebNNMimic",
    "WebNNWeighted",
    "available_strategies",
    "builtin_strategies",
    "create_strategy",
    "get_strategy",
    "strategy_info",
]
