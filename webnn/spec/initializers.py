"""Weight initialisers with TF.js semantics, sampled with numpy.

Each initialiser follows tfjs-layers 4.22:

- fans (`compute_fans`): a 2-D shape ``(a, b)`` has fan_in ``a`` and fan_out ``b``; a 3/4/5-D
  kernel (channels last) has receptive field ``r = prod(shape[:-2])``, fan_in ``shape[-2] * r`` and
  fan_out ``shape[-1] * r``; any other rank has fan_in = fan_out = ``sqrt(prod(shape))``.
- variance scaling: ``s = scale / max(1, n)`` with ``n`` = fan_in, fan_out or their mean (mode);
  distribution ``uniform`` draws from ``U(-sqrt(3 s), sqrt(3 s))``; ``normal`` draws a normal with
  standard deviation ``sqrt(s)`` truncated at two standard deviations (TF.js applies no correction
  for the truncation, so the sample's standard deviation is about ``0.8796 sqrt(s)``).
- glorotUniform/glorotNormal = (1, fanAvg), heUniform/heNormal = (2, fanIn),
  leCunUniform/leCunNormal = (1, fanIn), each with its distribution.
- orthogonal: QR of a ``max(r, c) x min(r, c)`` standard normal matrix (``r = prod(shape[:-1])``,
  ``c = shape[-1]``), columns of Q multiplied by the signs of R's diagonal, transposed when
  ``r < c``, times ``gain``.
- identity: ``gain * I`` (2-D square shapes only); zeros, ones, constant(value);
  randomUniform(minval=-0.05, maxval=0.05); randomNormal and truncatedNormal (mean=0, stddev=0.05,
  truncated at two standard deviations).

Sampling is float64 then cast to float32, from a numpy `Generator` the caller seeds, so the same
seed gives bit-identical weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from webnn.spec.casing import to_camel

PRESETS: dict[str, tuple[float, str, str]] = {
    "glorotUniform": (1.0, "fanAvg", "uniform"),
    "glorotNormal": (1.0, "fanAvg", "normal"),
    "heUniform": (2.0, "fanIn", "uniform"),
    "heNormal": (2.0, "fanIn", "normal"),
    "leCunUniform": (1.0, "fanIn", "uniform"),
    "leCunNormal": (1.0, "fanIn", "normal"),
}
"""Named variance-scaling initialisers: (scale, mode, distribution)."""

ALIASES = {"lecunUniform": "leCunUniform", "lecunNormal": "leCunNormal"}

DEFAULTS: dict[str, dict[str, Any]] = {
    "zeros": {},
    "ones": {},
    "constant": {},  # value is required
    "randomUniform": {"minval": -0.05, "maxval": 0.05},
    "randomNormal": {"mean": 0.0, "stddev": 0.05},
    "truncatedNormal": {"mean": 0.0, "stddev": 0.05},
    "varianceScaling": {"scale": 1.0, "mode": "fanIn", "distribution": "normal"},
    "orthogonal": {"gain": 1.0},
    "identity": {"gain": 1.0},
    **{name: {} for name in PRESETS},
}
"""Every initialiser kind and the defaults of its parameters (TF.js defaults)."""

_CLASS_NAMES = {
    "zeros": "Zeros", "ones": "Ones", "constant": "Constant", "randomUniform": "RandomUniform",
    "randomNormal": "RandomNormal", "truncatedNormal": "TruncatedNormal",
    "varianceScaling": "VarianceScaling", "orthogonal": "Orthogonal", "identity": "Identity",
}
_KIND_OF_CLASS = {
    **{v: k for k, v in _CLASS_NAMES.items()},
    "GlorotUniform": "glorotUniform", "GlorotNormal": "glorotNormal", "HeUniform": "heUniform",
    "HeNormal": "heNormal", "LeCunUniform": "leCunUniform", "LeCunNormal": "leCunNormal",
}
_SEEDED = {"randomUniform", "randomNormal", "truncatedNormal", "varianceScaling", "orthogonal"}


class Sampler(Protocol):
    """Anything that draws a weight tensor: an `Initializer`, or a wrapper like `UnitForgetBias`."""

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray: ...


def compute_fans(shape: tuple[int, ...]) -> tuple[float, float]:
    """(fan_in, fan_out) of a weight shape, channels-last, as TF.js `computeFans`."""
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    if len(shape) in (3, 4, 5):
        receptive = math.prod(shape[:-2])
        return float(shape[-2] * receptive), float(shape[-1] * receptive)
    root = math.sqrt(math.prod(shape))
    return root, root


def truncated_normal(rng: np.random.Generator, shape: tuple[int, ...], mean: float,
                     stddev: float) -> np.ndarray:
    """Normal samples redrawn until all lie within two standard deviations of the mean."""
    values = rng.standard_normal(math.prod(shape))
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2.0
    return (mean + stddev * values).reshape(shape)


@dataclass(frozen=True)
class Initializer:
    """One initialiser: `kind` (TF.js identifier, e.g. ``glorotUniform``) and its parameters."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_spec(cls, value: str | dict[str, Any]) -> Initializer:
        """From a spec value: ``"heNormal"`` or ``{"type": "constant", "value": 0.1}``; defaults
        filled in. The value must already have passed the schema."""
        if isinstance(value, str):
            kind, given = value, {}
        else:
            kind, given = value["type"], {k: v for k, v in value.items() if k != "type"}
        kind = ALIASES.get(kind, kind)
        return cls(kind, {**DEFAULTS[kind], **given})

    @classmethod
    def from_tfjs(cls, config: dict[str, Any]) -> dict[str, Any]:
        """The spec form of a serialised TF.js/Keras initialiser ``{"class_name", "config"}``.

        Unknown class names are returned as ``{"type": <name>}`` so the schema reports them.
        """
        class_name = config.get("class_name", config.get("className"))
        if not isinstance(class_name, str):
            return {"type": class_name}
        kind = _KIND_OF_CLASS.get(class_name, to_camel(class_name[:1].lower() + class_name[1:]))
        inner = config.get("config")
        params = {to_camel(k): v for k, v in (inner if isinstance(inner, dict) else {}).items()
                  if k not in ("seed", "dtype")}
        for key in ("mode", "distribution"):
            if isinstance(params.get(key), str):
                params[key] = to_camel(params[key])
        if kind in PRESETS:
            params = {}
        return {"type": kind, **params}

    def to_spec(self) -> dict[str, Any]:
        """Normalised spec form, every parameter explicit."""
        return {"type": self.kind, **self.params}

    def variance_scaling(self) -> tuple[float, str, str] | None:
        if self.kind in PRESETS:
            return PRESETS[self.kind]
        if self.kind == "varianceScaling":
            p = self.params
            return float(p["scale"]), p["mode"], p["distribution"]
        return None

    def tfjs_config(self) -> dict[str, Any]:
        """Serialised TF.js form (camelCase; `casing.pythonic` gives the saved form)."""
        scaling = self.variance_scaling()
        if scaling is not None:
            scale, mode, distribution = scaling
            return {"className": "VarianceScaling",
                    "config": {"scale": scale, "mode": mode, "distribution": distribution,
                               "seed": None}}
        config = dict(self.params)
        if self.kind in _SEEDED:
            config["seed"] = None
        return {"className": _CLASS_NAMES[self.kind], "config": config}

    def check(self, shape: tuple[int, ...]) -> str | None:
        """Why this initialiser cannot fill `shape`, or None."""
        if self.kind == "identity" and (len(shape) != 2 or shape[0] != shape[1]):
            return f"identity needs a square 2-D weight; this weight has shape {list(shape)}"
        if self.kind == "orthogonal" and len(shape) < 2:
            return f"orthogonal needs a weight of at least 2 dimensions; this one has {list(shape)}"
        return None

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """A float32 tensor of `shape` drawn from this initialiser."""
        return self._sample64(tuple(shape), rng).astype(np.float32)

    def _sample64(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        p, kind = self.params, self.kind
        scaling = self.variance_scaling()
        if scaling is not None:
            scale, mode, distribution = scaling
            fan_in, fan_out = compute_fans(shape)
            n = {"fanIn": fan_in, "fanOut": fan_out}.get(mode, (fan_in + fan_out) / 2)
            s = scale / max(1.0, n)
            if distribution == "uniform":
                limit = math.sqrt(3.0 * s)
                return rng.uniform(-limit, limit, size=shape)
            return truncated_normal(rng, shape, 0.0, math.sqrt(s))
        if kind == "zeros":
            return np.zeros(shape)
        if kind == "ones":
            return np.ones(shape)
        if kind == "constant":
            return np.full(shape, float(p["value"]))
        if kind == "randomUniform":
            return rng.uniform(p["minval"], p["maxval"], size=shape)
        if kind == "randomNormal":
            return rng.normal(p["mean"], p["stddev"], size=shape)
        if kind == "truncatedNormal":
            return truncated_normal(rng, shape, p["mean"], p["stddev"])
        if kind == "orthogonal":
            return float(p["gain"]) * _orthogonal(shape, rng)
        if kind == "identity":
            return float(p["gain"]) * np.eye(shape[0])
        raise ValueError(f"unknown initializer {kind!r}")


def _orthogonal(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    rows, cols = math.prod(shape[:-1]), shape[-1]
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    q = q * np.where(np.diag(r) < 0, -1.0, 1.0)
    if rows < cols:
        q = q.T
    return q.reshape(shape)


@dataclass(frozen=True)
class UnitForgetBias:
    """LSTM bias with ``unitForgetBias``: the forget-gate slice ``[units, 2 units)`` is ones, the
    rest comes from the bias initialiser (gate order i, f, c, o as in TF.js)."""

    inner: Initializer
    units: int

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        values = self.inner.sample(shape, rng)
        values[self.units : 2 * self.units] = 1.0
        return values
