"""Central differential privacy on buffered deltas: DP-FedAvg with adaptive clipping
(McMahan et al. 2018, "Learning Differentially Private Recurrent Language Models", ICLR;
Andrew et al. 2021, "Differentially Private Learning with Adaptive Clipping", NeurIPS), made
asynchronous the FedBuff way: the server buffers K updates and moves once per K.

For each update the delta from the version the client started from, ``d_i = x_i - base_i``, is
clipped to the bound C: ``d_i <- d_i * min(1, C / ||d_i||)``, and ``b_i = 1[||d_i|| <= C]`` is
counted. After K updates, with Gaussian noise of the server's own draw:

    x <- x + server_lr * (sum_i d_i + N(0, (z_delta * C)^2 I)) / K

and, with ``adaptive`` (Andrew et al. 2021, Algorithm 1, geometric update), the bound follows the
``target_quantile`` gamma of the update norms through a noised count:

    b~ = (sum_i b_i + N(0, sigma_b^2)) / K,      C <- C * exp(-clip_lr * (b~ - gamma))

The two noisy queries together are one Gaussian mechanism with noise multiplier z
(``noise_multiplier``) when ``z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)`` (their Theorem 1), which
needs ``z < 2 sigma_b``; ``sigma_b`` defaults to ``max(K / 20, z)``: K / 20 as in the paper, which
had hundreds of clients per round, but at least z, so small buffers still fit the budget (then
``z_delta = 1.155 z``: 15 % more noise on the deltas). Without ``adaptive``, ``z_delta = z`` and C
stays at ``clip_norm``.

Privacy spent: each flush is that Gaussian mechanism applied to a sum in which one update moves
the result by at most C, so after T flushes the guarantee is the T-fold composition, turned into
(epsilon, delta) by the RDP accountant of Google's `dp-accounting` library (never a home-made
one). No amplification by subsampling is claimed: volunteers choose when to contribute, the
server does not sample them. The protected unit is one update: a volunteer who contributes u
updates over a run is covered by group privacy, at roughly u times the epsilon. Noise is drawn
from OS entropy unless ``noise_seed`` is set (for experiments only: seeded noise protects
nothing).

Restarts never replay noise. With a seed, the generator's state is checkpointed (meta ``rng``,
numpy's PCG64 state) and a resumed run continues the same stream; a checkpoint from before the
state was kept continues with the seed's stream for the next flush (``SeedSequence(seed,
spawn_key=(flushes,))``), independent of the noise already drawn. With OS entropy nothing is
written: a resumed run draws fresh entropy, so its noise is independent of everything before and
no checkpoint lets its reader predict the noise to come.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from webnn.merge.base import ModelState, Strategy, StrategyState, Update
from webnn.merge.errors import ParamError, StrategyError
from webnn.merge.fedbuff import base_delta_check
from webnn.merge.params import Param
from webnn.merge.screening import delta_norm
from webnn.merge.webnn_rules import merged_steps

DEFAULT_DELTA = 1e-5
COUNT_NOISE_DIVISOR = 20.0
"""sigma_b = max(K / 20, z) unless ``count_noise`` is given (K / 20: Andrew et al. 2021,
section 3)."""


class MissingAccountingError(RuntimeError):
    """``dp-accounting`` is not installed; the message names the install command."""


def delta_noise_multiplier(noise_multiplier: float, count_noise: float) -> float:
    """``z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)``: the delta's share of a total noise multiplier
    z when the clipped-count query spends the rest (Andrew et al. 2021, Theorem 1)."""
    rest = noise_multiplier ** -2 - (2.0 * count_noise) ** -2
    if rest <= 0:
        raise ValueError(f"noise_multiplier {noise_multiplier} must be below 2 * count_noise "
                         f"({2 * count_noise}) for the count query to fit in the budget")
    return rest ** -0.5


def geometric_clip_update(clip: float, unclipped_fraction: float, target_quantile: float,
                          clip_lr: float) -> float:
    """``C * exp(-clip_lr * (b - gamma))``: grows while fewer than gamma of the updates fit."""
    return clip * math.exp(-clip_lr * (unclipped_fraction - target_quantile))


def privacy_spent(noise_multiplier: float, flushes: int, delta: float) -> float:
    """Epsilon at `delta` after `flushes` Gaussian mechanisms of `noise_multiplier` (RDP)."""
    if flushes == 0:
        return 0.0
    try:
        from dp_accounting import dp_event
        from dp_accounting.rdp import rdp_privacy_accountant
    except ImportError:
        raise MissingAccountingError(
            "the privacy accountant needs the dp-accounting package: "
            "pip install 'webnn[privacy]'") from None
    accountant = rdp_privacy_accountant.RdpAccountant()
    accountant.compose(dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(noise_multiplier),
                                                    flushes))
    return float(accountant.get_epsilon(delta))


class DifferentialPrivacy(Strategy):
    """Buffer K clipped deltas, add Gaussian noise to their sum, move by their noised mean."""

    name = "dp"
    description = ("Central differential privacy (DP-FedAvg with adaptive clipping, Andrew et al. "
                   "2021) over a buffer of K deltas: clip each to C, x += server_lr * (sum + "
                   "N(0, (z C)^2)) / K; epsilon at delta from dp-accounting's RDP accountant.")
    params = (
        Param("k", int, 10, "updates buffered per noisy step", minimum=1),
        Param("noise_multiplier", float, 1.0, "z: noise std over the sensitivity C", minimum=0),
        Param("clip_norm", float, 0.1, "C (the initial C with adaptive clipping)", minimum=0),
        Param("adaptive", bool, True, "adapt C to the target quantile of update norms"),
        Param("target_quantile", float, 0.5, "adaptive: gamma, the fraction of updates that "
              "should fit under C", minimum=0, maximum=1),
        Param("clip_lr", float, 0.2, "adaptive: learning rate of the geometric C update",
              minimum=0),
        Param("count_noise", float, None, "adaptive: sigma_b of the clipped-count query "
              "(default max(K / 20, noise_multiplier))", minimum=0),
        Param("server_lr", float, 1.0, "server learning rate", minimum=0),
        Param("delta", float, DEFAULT_DELTA, "delta of the reported (epsilon, delta)", minimum=0,
              maximum=1),
        Param("noise_seed", int, None, "seed the noise (experiments only: seeded noise is "
              "not private)", minimum=0),
    )
    needs_base_weights = True
    k: int
    noise_multiplier: float
    clip_norm: float
    adaptive: bool
    target_quantile: float
    clip_lr: float
    count_noise: float | None
    server_lr: float
    delta: float
    noise_seed: int | None

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        for name in ("noise_multiplier", "clip_norm", "server_lr", "delta", "count_noise"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ParamError(name, f"strategy 'dp': {name} must be > 0, "
                                       f"got {getattr(self, name)}")
        self.sigma_b = (self.count_noise if self.count_noise is not None
                        else max(self.k / COUNT_NOISE_DIVISOR, self.noise_multiplier))
        if self.adaptive:
            try:
                self.z_delta = delta_noise_multiplier(self.noise_multiplier, self.sigma_b)
            except ValueError as error:
                raise ParamError("noise_multiplier", f"strategy 'dp': {error}") from None
        else:
            self.z_delta = self.noise_multiplier
        self.rng = np.random.default_rng(self.noise_seed)
        self.clip = self.clip_norm
        self._sum: np.ndarray | None = None
        self.count = 0
        self.unclipped = 0
        self.max_steps = 0
        self.flushes = 0
        self._epsilon: tuple[int, float] | None = None  # (flushes, epsilon) last computed

    def effective_params(self) -> dict[str, Any]:
        """count_noise as used (sigma_b: its default is max(K / 20, noise_multiplier))."""
        return {**super().effective_params(), "count_noise": self.sigma_b}

    def merge(self, model: ModelState, update: Update) -> bool:
        base = base_delta_check(update, model.weights, self.name)
        if self._sum is None or self._sum.size != model.weights.size:
            if self.count and self._sum is not None:
                raise StrategyError(f"strategy 'dp': the buffer holds {self._sum.size} values, "
                                    f"the model {model.weights.size}")
            self._sum = np.zeros_like(model.weights)
        delta = update.weights  # scratch: becomes the clipped delta
        np.subtract(delta, base, out=delta)
        norm = delta_norm(delta)
        if norm <= self.clip:
            self.unclipped += 1
        else:
            delta *= np.float32(self.clip / norm)
        self._sum += delta
        self.count += 1
        self.max_steps = max(self.max_steps, update.steps_behind)
        if self.count < self.k:
            return False
        noise = self.rng.standard_normal(dtype=np.float32, out=delta)  # the update is scratch
        noise *= np.float32(self.z_delta * self.clip)
        self._sum += noise
        self._sum *= np.float32(self.server_lr / self.count)
        model.weights += self._sum
        model.steps = merged_steps(model.steps, self.max_steps)
        if self.adaptive:
            fraction = (self.unclipped + self.rng.normal(0.0, self.sigma_b)) / self.count
            self.clip = geometric_clip_update(self.clip, fraction, self.target_quantile,
                                              self.clip_lr)
        self.flushes += 1
        self._sum.fill(0.0)
        self.count = self.unclipped = self.max_steps = 0
        return True

    def epsilon(self) -> float:
        """Epsilon spent so far at this strategy's `delta` (see the module docstring); computed
        once per noisy step, not per status request."""
        if self._epsilon is None or self._epsilon[0] != self.flushes:
            self._epsilon = (self.flushes,
                             privacy_spent(self.noise_multiplier, self.flushes, self.delta))
        return self._epsilon[1]

    def report(self) -> dict[str, Any]:
        """What status pages show: the privacy spent and the current clipping bound."""
        try:
            epsilon: float | None = self.epsilon()
        except MissingAccountingError:
            epsilon = None
        return {"epsilon": epsilon, "delta": self.delta, "noisySteps": self.flushes,
                "clipNorm": self.clip, "noiseMultiplier": self.noise_multiplier}

    def state(self) -> StrategyState:
        """``arrays["delta_sum"]`` (a copy, only while buffering); meta count, unclipped,
        max_steps, flushes, clip and, with a `noise_seed`, rng (the generator's state)."""
        arrays = {"delta_sum": self._sum.copy()} if self.count and self._sum is not None else {}
        meta: dict[str, Any] = {"count": self.count, "unclipped": self.unclipped,
                                "max_steps": self.max_steps, "flushes": self.flushes,
                                "clip": self.clip}
        if self.noise_seed is not None:
            meta["rng"] = self.rng.bit_generator.state
        return StrategyState(arrays, meta)

    def _resumed_rng(self, saved: Any, flushes: int) -> np.random.Generator:
        """The noise stream to resume with (see the module docstring): the saved PCG64 state
        with a seed, the seed's stream for flush `flushes` when none was saved, fresh OS entropy
        without a seed (a saved state is then ignored)."""
        if self.noise_seed is None:
            return np.random.default_rng()
        if saved is None:
            return np.random.default_rng(
                np.random.SeedSequence(self.noise_seed, spawn_key=(flushes,)))
        if not (isinstance(saved, dict) and saved.get("bit_generator") == "PCG64"
                and isinstance(saved.get("state"), dict)
                and all(isinstance(saved["state"].get(k), int) and not
                        isinstance(saved["state"].get(k), bool) for k in ("state", "inc"))):
            raise StrategyError(f"dp state: meta.rng must be numpy's PCG64 state, got "
                                f"{str(saved)[:80]!r}")
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = saved
        except (TypeError, ValueError, KeyError) as error:
            raise StrategyError(f"dp state: meta.rng is not a PCG64 state: {error}") from None
        return rng

    def load_state(self, state: StrategyState) -> None:
        meta = state.meta
        for key in ("count", "unclipped", "max_steps", "flushes"):
            value = meta.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise StrategyError(f"dp state: meta.{key} must be an integer >= 0, "
                                    f"got {value!r}")
        clip = meta.get("clip", self.clip_norm)
        if (isinstance(clip, bool) or not isinstance(clip, int | float)
                or not math.isfinite(clip) or clip <= 0):
            raise StrategyError(f"dp state: meta.clip must be a finite number > 0, got {clip!r}")
        unknown = sorted(set(state.arrays) - {"delta_sum"})
        if unknown:
            raise StrategyError(f"dp state: unknown arrays {unknown}")
        delta_sum = state.arrays.get("delta_sum")
        if meta.get("count", 0) and delta_sum is None:
            raise StrategyError("dp state: meta.count is not 0 but arrays.delta_sum is missing")
        rng = self._resumed_rng(meta.get("rng"), meta.get("flushes", 0))
        if delta_sum is not None:
            if (not isinstance(delta_sum, np.ndarray) or delta_sum.dtype != np.float32
                    or delta_sum.ndim != 1):
                raise StrategyError("dp state: arrays.delta_sum must be a flat float32 array")
            self._sum = np.array(delta_sum, dtype=np.float32, copy=True)
        elif self._sum is not None:
            self._sum.fill(0.0)
        self.count, self.unclipped = meta.get("count", 0), meta.get("unclipped", 0)
        self.max_steps, self.flushes = meta.get("max_steps", 0), meta.get("flushes", 0)
        self.clip = float(clip)
        self.rng = rng
