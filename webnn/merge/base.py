"""The strategy interface: what the coordinator hands a strategy and what a strategy must provide.

The coordinator owns the model (`ModelState`) and calls ``strategy.merge(model, update)`` for
every returned weight set, one at a time (merges are serialised). A strategy changes
``model.weights`` in place and sets ``model.steps``; it returns True when the model became a new
version (the coordinator then bumps ``model.version``, the strategy never does), False while it only
buffered the update. Anything a strategy keeps between calls (a buffer, running statistics) is saved
with `Strategy.state` and restored with `Strategy.load_state`, so a restarted server merges on
exactly as before.

A custom strategy, complete (use it by ``module:attr`` or an entry point in ``webnn.strategies``)::

    import numpy as np
    from webnn.merge import ModelState, Param, Strategy, Update

    class Ema(Strategy):
        name = "ema"
        description = "W_n = (1 - alpha) W_{n-1} + alpha W_p; t_n = max(t_{n-1}, t_p)."
        params = (Param("alpha", float, 0.5, "weight of the update", minimum=0, maximum=1),)
        alpha: float

        def merge(self, model: ModelState, update: Update) -> bool:
            np.subtract(update.weights, model.weights, out=update.weights)  # update is scratch
            update.weights *= self.alpha
            model.weights += update.weights
            model.steps = max(model.steps, update.steps_behind)
            return True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from webnn.merge.errors import StrategyError
from webnn.merge.params import Param, declared_params, resolve_params


@dataclass
class ModelState:
    """The server's model: flat float32 `weights`, WebNN's step count t (`steps`), `version`.

    Strategies mutate `weights` in place and set `steps`; the coordinator owns `version`.
    """

    weights: np.ndarray
    steps: int = 0
    version: int = 0


@dataclass
class Update:
    """One weight set returned by a client.

    The client started from version `base_version` (whose step count was `base_steps`) and
    trained `local_steps` steps. `staleness` = current version - `base_version`. `base_weights`
    holds that version's weights when the strategy sets ``needs_base_weights``, else None.
    `examples` is the number of training examples behind the update. `weights` belongs to the
    strategy for the duration of the merge call and may be overwritten (used as scratch space).
    """

    weights: np.ndarray
    base_version: int
    base_steps: int
    local_steps: int
    staleness: int
    client: str
    base_weights: np.ndarray | None = None
    examples: int = 0

    def __post_init__(self) -> None:
        for name in ("base_version", "base_steps", "local_steps", "staleness", "examples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"update from {self.client!r}: {name} must be an integer >= 0, "
                                 f"got {value!r}")
        _check_flat(self.weights, f"update from {self.client!r}: weights")
        if self.base_weights is not None:
            _check_flat(self.base_weights, f"update from {self.client!r}: base_weights")

    @property
    def steps_behind(self) -> int:
        """WebNN's t_p: the training steps behind this weight set, ``base_steps + local_steps``."""
        return int(self.base_steps) + int(self.local_steps)


@dataclass
class Partial:
    """Updates combined before the merge (pre-aggregation, `Strategy.combinable`).

    A combinable strategy folds updates into a `Partial` where they arrive
    (`Strategy.fold`) and the merge applies the whole partial at once
    (`Strategy.merge_partial`). The fields are the strategy's to use: `total` its running sum
    (flat float32, owned by the partial), `scale` a factor on the model (``W <- scale W +
    total`` for an average), `count` the updates folded in, `weight` their summed weight,
    `max_steps` the largest ``steps_behind``. `meta` is JSON-ready extra state.
    """

    total: np.ndarray
    count: int = 0
    weight: float = 0.0
    max_steps: int = 0
    scale: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class StrategyState:
    """What a strategy keeps between merges, to checkpoint: numpy `arrays`, JSON-ready `meta`."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.arrays and not self.meta


class Strategy(ABC):
    """Base class of merge strategies.

    Class attributes: `name` (registry name), `description` (one line, with the formula),
    `params` (declared `Param`s, or a pydantic model of them), `needs_base_weights` (the
    coordinator then keeps the weights of every version a client may still return from and passes
    them as ``update.base_weights``).
    ``__init__(**params)`` coerces the given values (strings too) to the declared types, fills in
    the defaults and sets each as an attribute; `param_values` holds them all.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    needs_base_weights: ClassVar[bool] = False
    combinable: ClassVar[bool] = False
    """Whether updates may be combined into a `Partial` before the merge (`fold`,
    `merge_partial`): true when merging the partial gives what merging its updates one by one
    would, up to float rounding (averages, FedBuff's buffer). Scale-out front-ends
    (`webnn.cluster`) then send one partial for several updates."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if isinstance(cls.params, type):  # a pydantic model of the parameters (webnn.merge.params)
            cls.params = declared_params(cls.params)
        if not isinstance(cls.params, tuple) or not all(isinstance(p, Param) for p in cls.params):
            raise TypeError(f"{cls.__qualname__}.params must be a tuple of Param")
        names = [p.name for p in cls.params]
        if len(set(names)) != len(names):
            raise TypeError(f"{cls.__qualname__}.params declares a name twice: {names}")
        clashes = [n for n in names if hasattr(Strategy, n)]
        if clashes:
            raise TypeError(f"{cls.__qualname__}: parameter names {clashes} clash with Strategy "
                            "attributes")

    def __init__(self, **params: Any) -> None:
        self.param_values: dict[str, Any] = resolve_params(
            self.name or type(self).__name__, self.params, params)
        for key, value in self.param_values.items():
            setattr(self, key, value)

    @abstractmethod
    def merge(self, model: ModelState, update: Update) -> bool:
        """Merge `update` into `model` in place; True when the model became a new version."""

    def effective_params(self) -> dict[str, Any]:
        """The parameter values in use, for status pages: `param_values` with the defaults a
        strategy works out itself (a None default such as fedasync's ``a``) filled in. A strategy
        that resolves a None default overrides this; a None left here means "not used"."""
        return dict(self.param_values)

    def fold(self, partial: Partial | None, update: Update) -> Partial:
        """Fold `update` into `partial` (None: start one); only for `combinable` strategies.
        `update.staleness` is the staleness where it arrived; `update.weights` is scratch."""
        raise StrategyError(f"strategy {self.name!r} does not combine updates before the merge")

    def merge_partial(self, model: ModelState, partial: Partial) -> bool:
        """Merge a `Partial` into `model` in place; True when the model became a new version.
        For a partial of one update the result equals ``merge(model, update)``."""
        raise StrategyError(f"strategy {self.name!r} does not combine updates before the merge")

    def report(self) -> dict[str, Any]:
        """Figures for status pages beside the parameters (JSON-ready: numbers, strings, None),
        e.g. the privacy spent; read on the event loop while a merge may run, so keep it cheap.
        Nothing by default."""
        return {}

    def state(self) -> StrategyState:
        """What to checkpoint; a stateless strategy has nothing."""
        return StrategyState()

    def load_state(self, state: StrategyState) -> None:
        """Restore what `state` returned; a stateless strategy accepts only an empty state."""
        if not state.empty:
            raise StrategyError(
                f"strategy {self.name!r} keeps no state, but the checkpoint holds arrays "
                f"{sorted(state.arrays)} and meta keys {sorted(state.meta)}")

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """A JSON-ready description: name, description, parameters, needsBaseWeights."""
        return {"name": cls.name, "description": cls.description,
                "needsBaseWeights": cls.needs_base_weights,
                "params": [p.describe() for p in cls.params]}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.param_values.items())
        return f"{type(self).__name__}({args})"


def check_same_shape(model: np.ndarray, update: np.ndarray) -> None:
    """Raise ValueError unless both buffers are flat float32 arrays of one size."""
    _check_flat(model, "model weights")
    _check_flat(update, "update weights")
    if model.size != update.size:
        raise ValueError(f"update holds {update.size} weights; the model has {model.size}")


def _check_flat(buffer: Any, what: str) -> None:
    if not isinstance(buffer, np.ndarray) or buffer.dtype != np.float32 or buffer.ndim != 1:
        described = (f"{buffer.dtype} array of shape {buffer.shape}"
                     if isinstance(buffer, np.ndarray) else type(buffer).__name__)
        raise ValueError(f"{what} must be a flat float32 array, got {described}")
