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
        return np.concatenate([g.ravel() for g in grads]).astype(np.float32)

    def accuracy(self, flat: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
        params = self.unflat(flat)
        h = x
        layers = len(params) // 2
        for i in range(layers):
            h = _times(h, params[2 * i]) + params[2 * i + 1]
            if i < layers - 1:
                h = np.maximum(h, 0)
        return float((h.argmax(axis=1) == y).mean())


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


def simulate(cfg: Config, clients: int, seed: int, data: Data, mlp: Mlp, target: float,
             max_updates: int, speeds: list[float] | None = None,
             jitter: float = 0.1, overhead: float = 0.0,
             milestones: tuple[float, ...] = ()) -> dict[str, Any]:
    """One run; returns updates/merges to target (None if not reached) and the final accuracy.

    Time unit: the compute of a task of 10 steps of 32 examples. A task of `steps` x `batch`
    examples takes ``steps x batch / 320 + overhead`` of them (compute proportional to the
    examples, as measured for the text model in Node), times a log-normal jitter, over the
    client's speed. `milestones`: lower accuracies whose first time is recorded on the way
    (``passed``: accuracy -> [updates, time])."""
    rng = np.random.default_rng(seed)
    model = ModelState(mlp.init(rng))
    strategy = create_strategy(cfg.strategy, cfg.params)
    versions = {0: model.weights.copy()}
    order = np.random.default_rng(seed + 1000)
    stream: list[int] = []
    optimisers = [Optimiser(cfg.optimiser, cfg.lr) for _ in range(clients)]
    speeds = speeds or [1.0] * clients
    queue: list[Event] = []

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
        work = cfg.local_steps * cfg.batch / 320 + overhead
        duration = work * rng.lognormal(0.0, jitter) / speeds[client]
        heapq.heappush(queue, Event(now + duration, client, model.version, w, model.steps))

    for c in range(clients):
        start(c, rng.uniform(0, 0.05))
    updates = 0
    reached: dict[str, Any] = {"updates": None, "merges": None, "time": None}
    passed: dict[float, list[float]] = {}
    acc = mlp.accuracy(model.weights, data.xv, data.yv)
    now = 0.0
    while updates < max_updates:
        ev = heapq.heappop(queue)
        now = ev.time
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
            acc = mlp.accuracy(model.weights, data.xv, data.yv)
            if not np.isfinite(model.weights).all():
                break
            for m in milestones:
                if m not in passed and acc >= m:
                    passed[m] = [updates, round(now, 2)]
            if reached["updates"] is None and acc >= target:
                reached = {"updates": updates, "merges": model.version, "time": now}
                break
        start(ev.client, now)
    return {**reached, "final": acc, "total_updates": updates, "passed": passed}


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
    parser.add_argument("--data", choices=("digits", "text"), default="digits")
    parser.add_argument("--corpus", help="text file for --data text (default: the bundled Tiny "
                                         "Shakespeare, bench/scaling.py's default too)")
    parser.add_argument("--overhead", type=float, default=0.0,
                        help="fixed cost of a task (exchange, fit set-up) in units of a "
                             "10-step x 32-example task's compute")
    parser.add_argument("--milestones", type=float, nargs="*", default=[],
                        help="lower accuracies whose median time is printed too")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    data = load_digits_data() if args.data == "digits" else load_text_data(corpus=args.corpus)
    if args.data == "text":
        print(f"corpus sha256 {data.corpus_sha256}", flush=True)
    mlp = Mlp((data.inputs, *args.hidden, int(data.y.max()) + 1 if args.data == "digits"
               else 97))
    rows = []
    for text in args.config:
        cfg = Config.parse(text)
        base_time = None
        for n in args.clients:
            speeds = list(np.linspace(1.0 / args.spread, 1.0, n)) if n > 1 else [1.0]
            runs = [simulate(cfg, n, s, data, mlp, args.target, args.max_updates, speeds,
                             overhead=args.overhead, milestones=tuple(args.milestones))
                    for s in args.seeds]
            ups = [r["updates"] for r in runs]
            times = [r["time"] if r["time"] is not None else math.inf for r in runs]
            med = float(np.median(times))
            base_time = med if n == args.clients[0] else base_time
            row = {"config": text, "clients": n, "updates": ups,
                   "times": [round(float(t), 1) for t in times], "time_median": med,
                   "speedup": (base_time or math.nan) / med,
                   "final": [round(r["final"], 3) for r in runs],
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
