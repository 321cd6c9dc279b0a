"""Event-driven simulation of asynchronous volunteer training: updates to target against clients.

Statistical efficiency (how many merged updates a run needs to reach a validation accuracy) does
not need real cores: N simulated clients each take a task (the newest model version, the next
``batch_size x local_steps`` examples of the shared seeded stream), train it with a numpy MLP whose
optimisers follow TF.js's Adam / SGD, and return after a task time drawn around
``1 / speed``; the project's own strategy classes (`webnn.merge`) merge the returned weights in
arrival order, exactly as the coordinator calls them (``Update`` with staleness, base weights).

Adam (TF.js ``tf.train.adam``): m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
w -= lr * m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps), b1 = 0.9, b2 = 0.999, eps = 1e-7, with t
counted by the optimiser object (so a persistent optimiser keeps its moments and its t across
tasks; ``reset=True`` makes a fresh one per task). SGD: w -= lr g.

    .venv/bin/python bench/scaling_sim.py --clients 1 2 4 8 16 --seeds 1 2 3 \
        --config "fedbuff k=1 normalize=count server_lr=1|adam lr=0.001 reset"

Text workload: ``--model embed`` simulates the benchmark's own model (bench/specs/text_mlp.json,
`EmbedMlp`); the default ``onehot`` MLP of the earlier passes learns about 2x faster per update
than real workers. With ``--task-seconds`` (a device run's ``clients / updates per second``),
``--eval-seconds 1.75`` (a validation seen when the evaluator ends it) and ``--until`` (the cap),
the embed model matches the session-5 device runs within the seed spread
(bench/scaling_results/sim_calibrate.py and its result text).

This is an exploration tool: the figures published in docs/scaling.md come from bench/scaling.py,
which runs the real server and real Node workers.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from webnn.merge import ModelState, Update, create_strategy

B1, B2, EPS = 0.9, 0.999, 1e-7


@dataclass
class Data:
    """Training examples `x` (or what `features` turns into examples), labels `y`, validation
    `xv`, `yv` (examples); `corpus_sha256` of a text corpus."""

    x: np.ndarray
    y: np.ndarray
    xv: np.ndarray
    yv: np.ndarray
    features: Callable[[np.ndarray], np.ndarray] | None = None
    corpus_sha256: str = ""
    width: int = 0
    """Input width of the model (0: ``x.shape[1]``); examples may be one-hot column indices."""

    @property
    def inputs(self) -> int:
        return self.width or int(self.x.shape[1])

    def examples(self, index: np.ndarray) -> np.ndarray:
        """The training examples at `index`."""
        return self.x[index] if self.features is None else self.features(self.x[index])


def _module(name: str) -> Any:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "data_modules" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_module", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_digits_data() -> Data:
    ds = _module("digits").load()
    return Data(np.asarray(ds.x_train), np.asarray(ds.y_train), np.asarray(ds.x_val),
                np.asarray(ds.y_val))


def load_text_data(seq_len: int = 12, validation: int = 2048, corpus: str | None = None) -> Data:
    """The windows bench/scaling.py trains on: `data_modules/text.py` over `corpus` (a file; None:
    the bundled Tiny Shakespeare) with ``seq_len`` 12, the last 10 % held out and its first
    `validation` windows validating; one-hot encoded per batch, so an MLP on them has the function
    class of the benchmark's embedding MLP. The examples are given as the indices of their 12
    one-hot columns (character c at position j: column 97 j + c), which `Mlp` reads as the
    product with the one-hot matrix without building it."""
    import hashlib

    text = _module("text")
    options = {"path": corpus} if corpus else {"corpus": "shakespeare"}
    ds = text.load(seq_len=seq_len, validation_limit=validation, **options)
    window = np.arange(seq_len)
    offsets = window * text.VOCABULARY_SIZE

    def one_hot(starts: np.ndarray) -> np.ndarray:
        return ds.tokens[starts[:, None] + window].astype(np.int64) + offsets

    starts = np.arange(ds.num_train)
    val = np.arange(ds.split, ds.split + ds.num_validation)
    raw = text.read_text(**options)[0].encode("utf-8")
    return Data(starts, ds.tokens[starts + seq_len].astype(np.int64), one_hot(val),
                ds.tokens[val + seq_len].astype(np.int64), one_hot,
                hashlib.sha256(raw).hexdigest(), seq_len * text.VOCABULARY_SIZE)


def load_teacher_data(**options: Any) -> Data:
    """The synthetic teacher task (`data_modules/teacher.py`, its `load` options, e.g.
    ``label_noise=0.3``): Gaussian inputs labelled by a seeded random network, a fraction of
    the training labels flipped, clean validation labels by default."""
    ds = _module("teacher").load(**options)
    return Data(np.asarray(ds.x_train), np.asarray(ds.y_train), np.asarray(ds.x_val),
                np.asarray(ds.y_val))


def parse_options(items: list[str]) -> dict[str, Any]:
    """``key=value`` items as keyword options, each value an int or float where it is one
    (``label_noise=0.3 inputs=64``); a clear error names an item without ``=``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--data-option {item!r} is not key=value")
        for kind in (int, float):
            try:
                out[key] = kind(value)
                break
            except ValueError:
                continue
        else:
            out[key] = value
    return out


@dataclass
class Mlp:
    """Dense ReLU layers, softmax output; weights flat in TF.js order (kernel, bias per layer)."""

    sizes: tuple[int, ...]

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        out: list[tuple[int, ...]] = []
        for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            out += [(a, b), (b,)]
        return out

    def init(self, rng: np.random.Generator) -> np.ndarray:
        parts = []
        for shape in self.shapes:
            if len(shape) == 2:
                limit = math.sqrt(6.0 / (shape[0] + shape[1]))  # glorot uniform
                parts.append(rng.uniform(-limit, limit, shape).ravel())
            else:
                parts.append(np.zeros(shape).ravel())
        return np.concatenate(parts).astype(np.float32)

    def unflat(self, flat: np.ndarray) -> list[np.ndarray]:
        out, offset = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape))
            out.append(flat[offset:offset + size].reshape(shape))
            offset += size
        return out

    def grad(self, flat: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Softmax cross-entropy gradient; `x` float examples, or integer arrays holding the
        indices of each example's one-hot (value 1) input columns."""
        return self.grad_and_input(flat, x, y)[0]

    def grad_and_input(self, flat: np.ndarray, x: np.ndarray, y: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        """The gradient of `grad` and the loss's gradient with respect to float `x` (None for
        one-hot index rows)."""
        params = self.unflat(flat)
        acts = [x]
        h = x
        layers = len(params) // 2
        for i in range(layers):
            z = _times(h, params[2 * i]) + params[2 * i + 1]
            h = np.maximum(z, 0) if i < layers - 1 else z
            acts.append(h)
        logits = acts[-1]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(y)), y] -= 1.0
        delta = p / len(y)
        grads: list[np.ndarray] = [np.empty(0)] * len(params)
        for i in reversed(range(layers)):
            if acts[i].dtype.kind in "iu":  # one-hot rows: scatter the rows of delta
                grads[2 * i] = np.zeros_like(params[2 * i])
                np.add.at(grads[2 * i], acts[i].ravel(),
                          np.repeat(delta, acts[i].shape[1], axis=0))
            else:
                grads[2 * i] = acts[i].T @ delta
            grads[2 * i + 1] = delta.sum(axis=0)
            if i:
                delta = (delta @ params[2 * i].T) * (acts[i] > 0)
        input_grad = None if acts[0].dtype.kind in "iu" else delta @ params[0].T
        return np.concatenate([g.ravel() for g in grads]).astype(np.float32), input_grad

    def example_sq_norms(self, flat: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """|g_i|^2 of each example's own loss gradient (float inputs; for the gradient noise
        scale): a dense kernel's per-example gradient is the outer product a_i d_i^T, of squared
        norm |a_i|^2 |d_i|^2; a bias's is d_i."""
        norms, _ = dense_example_sq_norms(self.unflat(flat), np.asarray(x, dtype=np.float64), y)
        return norms

    def loss(self, flat: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
        """Mean softmax cross-entropy on float examples."""
        params = self.unflat(flat)
        h = np.asarray(x, dtype=np.float64)
        layers = len(params) // 2
        for i in range(layers):
            h = h @ params[2 * i] + params[2 * i + 1]
            if i < layers - 1:
                h = np.maximum(h, 0)
        h = h - h.max(axis=1, keepdims=True)
        logp = h - np.log(np.exp(h).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean())

    def accuracy(self, flat: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
        params = self.unflat(flat)
        h = x
        layers = len(params) // 2
        for i in range(layers):
            h = _times(h, params[2 * i]) + params[2 * i + 1]
            if i < layers - 1:
                h = np.maximum(h, 0)
        return float((h.argmax(axis=1) == y).mean())


@dataclass
class EmbedMlp:
    """The benchmark's text model (bench/specs/text_mlp.json): an embedding of `vocab` characters
    into `dim` values per position, flattened, dense ReLU `hidden` layers, softmax over `vocab`;
    weights flat in TF.js order (embedding, then kernel and bias per dense layer), initialised as
    TF.js does (embedding U(-0.05, 0.05), kernels glorot uniform, biases 0).

    Examples are the one-hot column indices of `load_text_data` (position j, character c: column
    ``vocab j + c``), so the character is ``column % vocab``. The embedding's gradient is the
    scatter-add of the first layer's input gradient into the rows of the characters seen."""

    seq_len: int = 12
    vocab: int = 97
    dim: int = 8
    hidden: tuple[int, ...] = (256,)

    @property
    def dense(self) -> Mlp:
        return Mlp((self.seq_len * self.dim, *self.hidden, self.vocab))

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [(self.vocab, self.dim), *self.dense.shapes]

    def init(self, rng: np.random.Generator) -> np.ndarray:
        table = rng.uniform(-0.05, 0.05, (self.vocab, self.dim)).ravel()
        return np.concatenate([table, self.dense.init(rng)]).astype(np.float32)

    def _split(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = self.vocab * self.dim
        return flat[:size].reshape(self.vocab, self.dim), flat[size:]

    def _inputs(self, flat: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        table, _ = self._split(flat)
        chars = np.asarray(x) % self.vocab
        return chars, table[chars].reshape(len(chars), self.seq_len * self.dim)

    def grad(self, flat: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Softmax cross-entropy gradient (mean over the batch), embedding included."""
        table, rest = self._split(flat)
        chars, h = self._inputs(flat, x)
        dense_grad, input_grad = self.dense.grad_and_input(rest, h.astype(np.float32), y)
        table_grad = np.zeros_like(table)
        np.add.at(table_grad, chars.ravel(), input_grad.reshape(-1, self.dim))
        return np.concatenate([table_grad.ravel(), dense_grad]).astype(np.float32)

    def accuracy(self, flat: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
        _, rest = self._split(flat)
        _, h = self._inputs(flat, x)
        return self.dense.accuracy(rest, h, y)

    def example_sq_norms(self, flat: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """|g_i|^2 of each example's own loss gradient (for the gradient noise scale): a dense
        kernel's per-example gradient is the outer product a_i d_i^T, of squared norm
        |a_i|^2 |d_i|^2; a bias's is d_i; the embedding's adds the input gradients of the
        positions holding the same character (``sum_jk [c_j = c_k] <e_j, e_k>``)."""
        _, rest = self._split(flat)
        chars, h = self._inputs(flat, x)
        norms, delta = dense_example_sq_norms(self.dense.unflat(rest), h.astype(np.float64), y)
        e = delta.reshape(len(y), self.seq_len, self.dim)
        same = chars[:, :, None] == chars[:, None, :]
        norms += (np.einsum("bjd,bkd->bjk", e, e) * same).sum(axis=(1, 2))
        return norms


def dense_example_sq_norms(params: list[np.ndarray], x: np.ndarray,
                           y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|g_i|^2 of each example's own softmax cross-entropy gradient over a ReLU MLP's dense
    layers (`params`: kernel, bias per layer; `x` float64 inputs), and the loss gradient at the
    inputs. A dense kernel's per-example gradient is the outer product a_i d_i^T, of squared
    norm |a_i|^2 |d_i|^2; a bias's is d_i. One example's loss, so no 1/B."""
    layers = len(params) // 2
    acts = [x]
    for i in range(layers):
        z = acts[-1] @ params[2 * i] + params[2 * i + 1]
        acts.append(np.maximum(z, 0) if i < layers - 1 else z)
    delta = np.exp(acts[-1] - acts[-1].max(axis=1, keepdims=True))
    delta /= delta.sum(axis=1, keepdims=True)
    delta[np.arange(len(y)), y] -= 1.0
    norms = np.zeros(len(y))
    for i in reversed(range(layers)):
        d2 = (delta * delta).sum(axis=1)
        norms += (acts[i] * acts[i]).sum(axis=1) * d2 + d2
        delta = delta @ params[2 * i].T
        if i:
            delta *= acts[i] > 0
    return norms, delta


def _times(h: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``h @ kernel``; integer `h` holds the columns where a one-hot row is 1."""
    if h.dtype.kind in "iu":
        return kernel[h].sum(axis=1)
    return h @ kernel


@dataclass
class Optimiser:
    kind: str
    lr: float
    momentum: float = 0.9
    m: np.ndarray | None = None
    v: np.ndarray | None = None
    t: int = 0

    def step(self, w: np.ndarray, g: np.ndarray) -> None:
        if self.kind == "sgd":
            w -= np.float32(self.lr) * g
            return
        if self.m is None:
            self.m, self.v = np.zeros_like(w), np.zeros_like(w)
        assert self.v is not None
        if self.kind == "momentum":  # TF.js momentum: v = mu v + g; w -= lr v
            self.m *= np.float32(self.momentum)
            self.m += g
            w -= np.float32(self.lr) * self.m
            return
        self.t += 1
        self.m = B1 * self.m + (1 - B1) * g
        self.v = B2 * self.v + (1 - B2) * g * g
        mhat = self.m / (1 - B1 ** self.t)
        vhat = self.v / (1 - B2 ** self.t)
        w -= (self.lr * mhat / (np.sqrt(vhat) + EPS)).astype(np.float32)


@dataclass
class Config:
    strategy: str
    params: dict[str, Any]
    optimiser: str = "adam"
    lr: float = 0.001
    reset: bool = False
    batch: int = 32
    local_steps: int = 10
    warmup: float = 0.0
    """Gradual warm-up (Goyal et al. 2017): a task started at time t trains at
    ``lr (s + (1 - s) min(1, t / warmup))`` with s = 1/sqrt(clients), the one-client rate of the
    sqrt rule at t = 0; 0: no warm-up."""

    @classmethod
    def parse(cls, text: str) -> Config:
        merge, _, client = text.partition("|")
        name, *kv = merge.split()
        params = dict(p.split("=", 1) for p in kv)
        opt, *rest = client.split() or ["adam"]
        cfg = cls(name, params, opt)
        for item in rest:
            if item == "reset":
                cfg.reset = True
            else:
                key, value = item.split("=", 1)
                setattr(cfg, {"lr": "lr", "batch": "batch", "steps": "local_steps",
                              "warmup": "warmup"}[key],
                        float(value) if key in ("lr", "warmup") else int(value))
        return cfg


@dataclass(order=True)
class Event:
    time: float
    client: int = field(compare=False)
    base_version: int = field(compare=False)
    weights: np.ndarray = field(compare=False)
    steps: int = field(compare=False)


@dataclass
class Timing:
    """How simulated time passes and when the validation accuracy is seen.

    `task_seconds` (0: the unit model): a task takes this long (before jitter, over the client's
    speed), so times are in seconds and a device run's measured rate carries over
    (``clients / updates per second``); otherwise a task of L steps of B examples takes
    ``L B / 320 + overhead`` units of a 10-step x 32-example task. `eval_seconds` (0: every
    merge, at once): one evaluator, as the benchmark's, takes this long per validation: it starts
    on the newest version when the previous one ends (or at the next merge, if none is new) and
    its accuracy is seen when it ends. `until` (None: stop at the target): run to this time and
    keep the whole history."""

    task_seconds: float = 0.0
    overhead: float = 0.0
    jitter: float = 0.1
    eval_seconds: float = 0.0
    until: float | None = None


@dataclass
class _Eval:
    end: float
    version: int
    updates: int
    acc: float


def simulate(cfg: Config, clients: int, seed: int, data: Data, mlp: Any, target: float,
             max_updates: int, speeds: list[float] | None = None,
             jitter: float = 0.1, overhead: float = 0.0,
             milestones: tuple[float, ...] = (), timing: Timing | None = None,
             on_merge: Callable[[float, int, np.ndarray], None] | None = None,
             init_weights: np.ndarray | None = None) -> dict[str, Any]:
    """One run; returns updates/merges to target (None if not reached), the final accuracy and
    the validation `history` ([time, updates, accuracy] as the evaluator saw it, see `Timing`).

    `mlp`: `Mlp` or `EmbedMlp`. `milestones`: lower accuracies whose first time is recorded on
    the way (``passed``: accuracy -> [updates, time]). `on_merge(time, updates, weights)` is
    called after every merge (a probe; it must not change the weights). `init_weights`: start
    from these flat weights (a checkpoint) instead of the seeded initialisation; the seed still
    draws the task times and the example order, and every optimiser starts fresh."""
    timing = timing or Timing(overhead=overhead, jitter=jitter)
    rng = np.random.default_rng(seed)
    weights = mlp.init(rng)
    if init_weights is not None:
        if init_weights.shape != weights.shape:
            raise ValueError(f"init weights: {init_weights.size} values, the model has "
                             f"{weights.size}")
        weights = init_weights.astype(np.float32).copy()
    model = ModelState(weights)
    strategy = create_strategy(cfg.strategy, cfg.params)
    versions = {0: model.weights.copy()}
    order = np.random.default_rng(seed + 1000)
    stream: list[int] = []
    optimisers = [Optimiser(cfg.optimiser, cfg.lr) for _ in range(clients)]
    speeds = speeds or [1.0] * clients
    queue: list[Event] = []
    base = timing.task_seconds or 1.0

    def next_batch(n: int) -> np.ndarray:
        while len(stream) < n:
            stream.extend(order.permutation(len(data.y)).tolist())
        out = np.array(stream[:n])
        del stream[:n]
        return out

    def start(client: int, now: float) -> None:
        w = model.weights.copy()
        opt = Optimiser(cfg.optimiser, cfg.lr) if cfg.reset else optimisers[client]
        if cfg.warmup > 0:  # the rate changes in place, moments kept (as the trainer does)
            floor = 1.0 / math.sqrt(clients)
            opt.lr = cfg.lr * (floor + (1.0 - floor) * min(1.0, now / cfg.warmup))
        idx = next_batch(cfg.batch * cfg.local_steps)
        for s in range(cfg.local_steps):
            part = idx[s * cfg.batch:(s + 1) * cfg.batch]
            opt.step(w, mlp.grad(w, data.examples(part), data.y[part]))
        work = timing.task_seconds or cfg.local_steps * cfg.batch / 320 + timing.overhead
        duration = work * rng.lognormal(0.0, timing.jitter) / speeds[client]
        heapq.heappush(queue, Event(now + duration, client, model.version, w, model.steps))

    for c in range(clients):
        start(c, rng.uniform(0, 0.05 * base))
    updates = 0
    reached: dict[str, Any] = {"updates": None, "merges": None, "time": None}
    passed: dict[float, list[float]] = {}
    history: list[list[float]] = []
    acc = mlp.accuracy(model.weights, data.xv, data.yv)
    pending = _Eval(timing.eval_seconds, 0, 0, acc) if timing.eval_seconds > 0 else None

    def seen(time: float, ups: int, accuracy: float) -> bool:
        """Record a validation; True when the run should stop (target reached, no `until`)."""
        nonlocal reached
        history.append([round(time, 3), ups, round(accuracy, 5)])
        for m in milestones:
            if m not in passed and accuracy >= m:
                passed[m] = [ups, round(time, 2)]
        if reached["updates"] is None and accuracy >= target:
            reached = {"updates": ups, "merges": None, "time": time}
            return timing.until is None
        return False

    if pending is None:
        seen(0.0, 0, acc)
    now = 0.0
    stop = False
    while updates < max_updates and not stop:
        ev = heapq.heappop(queue)
        now = ev.time
        if timing.until is not None and now > timing.until:
            break
        while pending is not None and pending.end <= now and not stop:
            stop = seen(pending.end, pending.updates, pending.acc)
            pending = (_Eval(pending.end + timing.eval_seconds, model.version, updates,
                             mlp.accuracy(model.weights, data.xv, data.yv))
                       if model.version > pending.version else None)
        if stop:
            break
        update = Update(ev.weights, ev.base_version, ev.steps, cfg.local_steps,
                        model.version - ev.base_version, f"c{ev.client}",
                        base_weights=versions[ev.base_version],
                        examples=cfg.batch * cfg.local_steps)
        updates += 1
        if strategy.merge(model, update):
            model.version += 1
            versions[model.version] = model.weights.copy()
            live = {e.base_version for e in queue} | {model.version}
            for v in [v for v in versions if v not in live]:
                del versions[v]
            if not np.isfinite(model.weights).all():
                break
            if on_merge is not None:
                on_merge(now, updates, model.weights)
            if timing.eval_seconds <= 0:
                acc = mlp.accuracy(model.weights, data.xv, data.yv)
                stop = seen(now, updates, acc)
                if stop:
                    reached["merges"] = model.version
                    break
            elif pending is None:
                pending = _Eval(now + timing.eval_seconds, model.version, updates,
                                mlp.accuracy(model.weights, data.xv, data.yv))
        start(ev.client, now)
    final = history[-1][2] if history else acc
    return {**reached, "final": final, "total_updates": updates, "passed": passed,
            "history": history, "elapsed": now}


def load_weights(path: str, size: int) -> np.ndarray:
    """The flat float32 weights saved at `path` (``np.save`` of a 1-D array); a clear error
    naming the file when it is unreadable, not 1-D or not `size` values long."""
    try:
        flat = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--init-weights {path}: cannot read a .npy array ({exc})") from exc
    if flat.ndim != 1 or flat.size != size or flat.dtype.kind != "f":
        raise SystemExit(f"--init-weights {path}: {flat.dtype} array of shape {flat.shape}, the "
                         f"model needs {size} float weights")
    if not np.isfinite(flat).all():
        raise SystemExit(f"--init-weights {path}: holds non-finite values")
    return flat.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", required=True,
                        help='"strategy k=v ...|optimiser lr=X batch=B steps=L warmup=T '
                             '[reset]"')
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--max-updates", type=int, default=2000)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--spread", type=float, default=1.0,
                        help="client speeds spread evenly over [1/spread, 1]")
    parser.add_argument("--data", choices=("digits", "text", "teacher"), default="digits",
                        help="teacher: data_modules/teacher.py (Gaussian inputs labelled by a "
                             "random network, flipped training labels; bench/specs/"
                             "teacher_mlp.json's workload), options from --data-option")
    parser.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                        help="an option of the teacher data module's load(), e.g. "
                             "label_noise=0.3 (repeat for more)")
    parser.add_argument("--corpus", help="text file for --data text (default: the bundled Tiny "
                                         "Shakespeare, bench/scaling.py's default too)")
    parser.add_argument("--overhead", type=float, default=0.0,
                        help="fixed cost of a task (exchange, fit set-up) in units of a "
                             "10-step x 32-example task's compute")
    parser.add_argument("--milestones", type=float, nargs="*", default=[],
                        help="lower accuracies whose median time is printed too")
    parser.add_argument("--model", choices=("onehot", "embed"), default="onehot",
                        help="text: an MLP on the one-hot windows (the earlier passes), or the "
                             "benchmark's own model, bench/specs/text_mlp.json (embedding of 8 "
                             "per character, then --hidden)")
    parser.add_argument("--task-seconds", type=float, default=0.0,
                        help="a task's duration in seconds (a device run's clients / updates "
                             "per second); times are then in seconds (default: the unit model)")
    parser.add_argument("--eval-seconds", type=float, default=0.0,
                        help="one validation's duration: the accuracy is seen when it ends, "
                             "as the benchmark's evaluator (default 0: at every merge)")
    parser.add_argument("--until", type=float,
                        help="run to this time (the device run's cap) instead of stopping at "
                             "the target; the printed final accuracy is the last validation")
    parser.add_argument("--json", action="store_true",
                        help="one JSON document: every row with each seed's history")
    parser.add_argument("--init-weights", metavar="FILE",
                        help="start every run from these weights (a .npy of the model's flat "
                             "weights, e.g. bench/scaling_results/noise_scale.py --save-dir) "
                             "instead of a fresh initialisation; times count from that start")
    args = parser.parse_args(argv)
    if args.data_option and args.data != "teacher":
        parser.error("--data-option is for --data teacher")
    try:
        options = parse_options(args.data_option)
    except ValueError as exc:
        parser.error(str(exc))
    data = (load_digits_data() if args.data == "digits" else
            load_teacher_data(**options) if args.data == "teacher" else
            load_text_data(corpus=args.corpus))
    if args.data == "text":
        print(f"corpus sha256 {data.corpus_sha256}", file=sys.stderr if args.json else sys.stdout,
              flush=True)
    mlp: Mlp | EmbedMlp
    if args.model == "embed":
        if args.data != "text":
            parser.error("--model embed is the text workload's model (--data text)")
        mlp = EmbedMlp(hidden=tuple(args.hidden))
    else:
        mlp = Mlp((data.inputs, *args.hidden, int(data.y.max()) + 1 if args.data != "text"
                   else 97))
    timing = Timing(args.task_seconds, args.overhead, 0.1, args.eval_seconds, args.until)
    init = None
    if args.init_weights:
        init = load_weights(args.init_weights, sum(math.prod(s) for s in mlp.shapes))
    rows = []
    for text in args.config:
        cfg = Config.parse(text)
        base_time = None
        for n in args.clients:
            speeds = list(np.linspace(1.0 / args.spread, 1.0, n)) if n > 1 else [1.0]
            runs = [simulate(cfg, n, s, data, mlp, args.target, args.max_updates, speeds,
                             milestones=tuple(args.milestones), timing=timing,
                             init_weights=init)
                    for s in args.seeds]
            ups = [r["updates"] for r in runs]
            times = [r["time"] if r["time"] is not None else math.inf for r in runs]
            med = float(np.median(times))
            base_time = med if n == args.clients[0] else base_time
            row = {"config": text, "clients": n, "updates": ups,
                   "times": [round(float(t), 1) for t in times], "time_median": med,
                   "speedup": (base_time or math.nan) / med,
                   "final": [round(r["final"], 3) for r in runs],
                   "histories": [r["history"] for r in runs],
                   "updates_per_time": [round(r["total_updates"] / r["elapsed"], 3)
                                        if r["elapsed"] else None for r in runs],
                   "milestones": {m: float(np.median([r["passed"].get(m, [0, math.inf])[1]
                                                      for r in runs]))
                                  for m in args.milestones}}
            rows.append(row)
            if not args.json:
                print(f"{text:60s} n={n:2d} updates={ups} times={row['times']} time={med:6.2f} "
                      f"speedup={row['speedup']:.2f} final={row['final']} "
                      + " ".join(f"t({m:g})={t:.1f}" for m, t in row["milestones"].items()),
                      flush=True)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
