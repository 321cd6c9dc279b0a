"""`ServeConfig` (declared in `webnn.settings.serve`, every field a setting) and the loading of
what it names: `load_parts()` turns the references (spec path, data module, strategy name) into
the objects the coordinator uses.

`ServeConfig(...)` raises `ConfigError` listing every problem; `validate()` lists the problems of
the current values and the file system as ``field: message`` strings; `check()` raises them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webnn import bundled
from webnn.settings.errors import ConfigError
from webnn.settings.serve import ServeConfig

__all__ = ["ConfigError", "ModelParts", "ServeConfig", "default_client_dir", "load_parts"]


def default_client_dir() -> Path:
    """The bundled client: the installed package's ``_client`` (a wheel install), else the
    checkout's ``client_js`` (an editable install); see `webnn.bundled`."""
    return bundled.client_dir()


@dataclass
class ModelParts:
    """The loaded objects behind a config: spec, dataset, strategy instance and update screening."""

    spec: Any
    dataset: Any
    strategy: Any
    seed: int
    screening: Any = None
    partition: Any = None  # a `PartitionConfig`
    shards: Any = None  # its index arrays; None: iid (one shared stream)


def _load_screening(screening: Any) -> Any:
    """The `ScreeningConfig` of `screening` (see `ServeConfig`); None when it is off."""
    from webnn.merge.screening import DEFAULT_SCREENING, ScreeningConfig, ScreeningConfigError

    if isinstance(screening, ScreeningConfig):
        return screening
    if screening is False or (isinstance(screening, str) and screening.lower() == "off"):
        return None
    if screening is None:
        screening = {}
    if not isinstance(screening, dict):
        raise ConfigError([f"screening: must be a ScreeningConfig, a table or \"off\", "
                           f"got {screening!r}"])
    try:
        return ScreeningConfig.from_mapping({**DEFAULT_SCREENING, **screening})
    except ScreeningConfigError as error:
        raise ConfigError([str(error)]) from None


def _load_spec(source: Any) -> Any:
    if hasattr(source, "compiled") and hasattr(source, "training"):
        return source
    from webnn.spec import SpecError, load_spec

    try:
        return load_spec(source)
    except SpecError as error:
        lines = [f"{p.path}: {p.message}" for p in error.problems]
        raise ConfigError([f"spec: {line}" for line in lines]) from None


def _load_dataset(data: Any, options: dict[str, str], spec: Any) -> Any:
    if isinstance(data, str | Path):
        from webnn.data import DataModuleError, load_data_module

        try:
            dataset = load_data_module(str(data), {k: str(v) for k, v in options.items()})
        except DataModuleError as error:
            raise ConfigError([f"data: {error}"]) from None
    else:
        dataset = data
    from webnn.data import check_dataset

    problems = check_dataset(dataset, spec)
    if problems:
        raise ConfigError([f"data: {p}" for p in problems])
    return dataset


def _load_strategy(strategy: Any, params: dict[str, Any]) -> Any:
    if not isinstance(strategy, str):
        if params:
            raise ConfigError(["strategy_params: given with a strategy instance; "
                               "configure the instance instead"])
        return strategy
    from webnn.merge import create_strategy

    try:
        return create_strategy(strategy, params)
    except (ValueError, TypeError, KeyError, ImportError, LookupError) as error:
        raise ConfigError([f"strategy: {error}"]) from None


def load_parts(config: ServeConfig) -> ModelParts:
    """Validate `config` and load its spec, dataset and strategy; raises `ConfigError`."""
    config.check()
    spec = _load_spec(config.spec)
    dataset = _load_dataset(config.data, config.data_options, spec)
    strategy = _load_strategy(config.strategy, config.strategy_params)
    seed = config.seed if config.seed is not None else int(getattr(spec.training, "seed", 0) or 0)
    partition, shards = _load_partition(config.partition, dataset, seed)
    return ModelParts(spec=spec, dataset=dataset, strategy=strategy, seed=seed,
                      screening=_load_screening(config.screening), partition=partition,
                      shards=shards)


DEFAULT_SHARDS = 16
"""Shards of a non-iid partition when none are set."""


def _load_partition(setting: Any, dataset: Any, seed: int) -> tuple[Any, Any]:
    """The `PartitionConfig` and the shards of the training set (None for iid)."""
    from webnn.data.partition import PartitionConfig, PartitionError, partition

    config = PartitionConfig.from_mapping(setting).with_default_shards(DEFAULT_SHARDS)
    if config.is_iid:
        return config, None
    try:
        labels = dataset.train_labels() if config.kind != "by_key" else None
        keys = dataset.train_keys() if config.kind == "by_key" else None
        shards = partition(config, seed, labels=labels, keys=keys)
        dataset.train_examples(shards[0][:1])  # random access is needed: fail now, not later
    except (PartitionError, AttributeError, ValueError) as error:
        text = str(error)
        raise ConfigError([text if text.startswith("partition") else f"partition: {text}"]
                          ) from None
    if config.shards is None:
        from dataclasses import replace

        config = replace(config, shards=len(shards))
    return config, shards
