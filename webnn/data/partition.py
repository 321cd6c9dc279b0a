"""Partitions of the training set into client shards (non-IID data for federated experiments).

A partition is a pure function: training labels (or keys) + `PartitionConfig` + seed -> a list of
P index arrays (`shards`), every training example in exactly one shard, the same arrays for the
same inputs. Kinds:

- ``iid``: every client reads the one shuffled stream of the whole training set (the server keeps
  today's single batch sequence; `partition` returns one shard holding everything).
- ``dirichlet`` (label skew, Hsu, Qi & Brown 2019, "Measuring the effects of non-identical data
  distribution"): for each class c, its examples (shuffled) are cut over the P shards with
  proportions ``q_c ~ Dirichlet(alpha * 1_P)``: shard j gets the examples at positions
  ``[round(n_c * Q_{j-1}), round(n_c * Q_j))`` with ``Q_j = q_1 + ... + q_j``. alpha -> infinity
  approaches IID; alpha -> 0 gives each class to one shard. Draws are repeated (same generator)
  until every shard holds at least `min_examples` examples; after 1000 draws it is an error.
- ``shards`` (k classes per client, McMahan et al. 2017, "Communication-efficient learning of deep
  networks from decentralized data", the pathological non-IID split): examples are sorted by label
  (ties in a seeded random order), cut into ``P * k`` equal pieces (sizes differ by at most one),
  and the pieces are dealt out in a seeded random order, k to each shard. A shard then holds at
  most about k labels (a piece may straddle two labels).
- ``by_key``: the data module gives a key per training example (e.g. its document); each distinct
  key is a shard (keys in sorted order). With `shards` set, key i (in sorted order) goes to shard
  ``i mod P`` instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

KINDS = ("iid", "dirichlet", "shards", "by_key")
MAX_DRAWS = 1000
"""Dirichlet draws tried before a partition with every shard holding `min_examples` is given up."""
MAX_SHARDS = 100_000


class PartitionError(ValueError):
    """A partition setting is invalid or the data cannot be partitioned so; says which key."""


@dataclass(frozen=True)
class PartitionConfig:
    """How the training set is split over clients.

    `kind`: one of `KINDS`; `shards`: P (None: the caller's default, e.g. the number of clients;
    for ``by_key`` one shard per key); `alpha`: the Dirichlet concentration (``dirichlet``);
    `classes`: k, label pieces per shard (``shards``); `min_examples`: the least examples a
    ``dirichlet`` shard may hold.
    """

    kind: str = "iid"
    shards: int | None = None
    alpha: float = 0.5
    classes: int = 2
    min_examples: int = 1

    @property
    def is_iid(self) -> bool:
        return self.kind == "iid"

    def with_default_shards(self, shards: int) -> PartitionConfig:
        """This config with `shards` set to `shards` where it is unset (``by_key`` keeps None)."""
        if self.shards is not None or self.kind in ("iid", "by_key"):
            return self
        return PartitionConfig(self.kind, shards, self.alpha, self.classes, self.min_examples)

    def public(self) -> dict[str, Any]:
        """The settings that matter for this kind (status, reports)."""
        out: dict[str, Any] = {"kind": self.kind, "shards": self.shards}
        if self.kind == "dirichlet":
            out.update(alpha=self.alpha, minExamples=self.min_examples)
        elif self.kind == "shards":
            out["classes"] = self.classes
        return out

    @classmethod
    def from_mapping(cls, mapping: Any, path: str = "partition") -> PartitionConfig:
        """A config from a table (``{"kind": "dirichlet", "alpha": 0.1, "shards": 16}``), a kind
        name, None (iid) or a `PartitionConfig`; raises `PartitionError` naming ``path.key``."""
        if isinstance(mapping, PartitionConfig):
            mapping.check(path)
            return mapping
        if mapping is None:
            return cls()
        if isinstance(mapping, str):
            mapping = {"kind": mapping}
        if not isinstance(mapping, dict):
            raise PartitionError(f"{path}: expected a table or a kind name, got {mapping!r}")
        allowed = ("kind", "shards", "alpha", "classes", "min_examples")
        for key in mapping:
            if key not in allowed:
                raise PartitionError(f"{path}.{key}: unknown key (allowed: {', '.join(allowed)})")
        kind = mapping.get("kind", "iid")
        config = cls(kind=kind, shards=mapping.get("shards"),
                     alpha=mapping.get("alpha", cls.alpha),
                     classes=mapping.get("classes", cls.classes),
                     min_examples=mapping.get("min_examples", cls.min_examples))
        config.check(path)
        return config

    def check(self, path: str = "partition") -> None:
        """Raise `PartitionError` naming the first bad key."""
        if self.kind not in KINDS:
            raise PartitionError(f"{path}.kind: expected one of {', '.join(KINDS)}, "
                                 f"got {self.kind!r}")
        if self.shards is not None and not (_is_int(self.shards)
                                            and 1 <= self.shards <= MAX_SHARDS):
            raise PartitionError(f"{path}.shards: expected an integer in 1..{MAX_SHARDS}, "
                                 f"got {self.shards!r}")
        alpha = self.alpha
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not (
                math.isfinite(alpha) and alpha > 0):
            raise PartitionError(f"{path}.alpha: expected a number > 0, got {alpha!r}")
        if not (_is_int(self.classes) and self.classes >= 1):
            raise PartitionError(f"{path}.classes: expected an integer >= 1, "
                                 f"got {self.classes!r}")
        if not (_is_int(self.min_examples) and self.min_examples >= 1):
            raise PartitionError(f"{path}.min_examples: expected an integer >= 1, "
                                 f"got {self.min_examples!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def class_labels(y: Any) -> np.ndarray:
    """Class indices from labels: class indices as they are, one-hot rows by their argmax."""
    y = np.asarray(y)
    if y.ndim == 1:
        if not np.issubdtype(y.dtype, np.integer):
            if not np.all(np.equal(np.mod(y, 1), 0)):
                raise PartitionError("labels are not class indices (non-integer values); label "
                                     "partitions need classes")
            y = y.astype(np.int64)
        return y.astype(np.int64, copy=False)
    if y.ndim == 2:
        return np.argmax(y, axis=1).astype(np.int64)
    raise PartitionError(f"labels of shape {y.shape[1:]} per example are not classes; label "
                         "partitions need class indices or one-hot rows")


def partition(config: PartitionConfig, seed: int, labels: Any = None,
              keys: Any = None, num_examples: int | None = None) -> list[np.ndarray]:
    """The shards of `config` (see the module docstring): sorted int64 index arrays.

    ``iid`` needs `num_examples` (or labels); ``dirichlet`` and ``shards`` need `labels`;
    ``by_key`` needs `keys`. Raises `PartitionError` when they are missing or cannot be split.
    """
    config.check()
    if config.kind == "iid":
        n = num_examples if num_examples is not None else len(np.asarray(labels))
        return [np.arange(int(n), dtype=np.int64)]
    if config.kind == "by_key":
        if keys is None:
            raise PartitionError("partition.kind: by_key needs a key per training example, and "
                                 "the data module gives none (train_keys)")
        return _by_key(np.asarray(keys), config.shards)
    if labels is None:
        raise PartitionError(f"partition.kind: {config.kind} needs the training labels, and the "
                             "data module gives none (train_labels)")
    classes = class_labels(labels)
    shards = config.shards if config.shards is not None else 1
    if shards > len(classes):
        raise PartitionError(f"partition.shards: {shards} shards but only {len(classes)} "
                             "training examples")
    if config.kind == "dirichlet":
        return _dirichlet(classes, shards, float(config.alpha), int(config.min_examples), seed)
    return _label_pieces(classes, shards, int(config.classes), seed)


def _dirichlet(labels: np.ndarray, shards: int, alpha: float, min_examples: int,
               seed: int) -> list[np.ndarray]:
    if shards * min_examples > len(labels):
        raise PartitionError(f"partition.min_examples: {shards} shards of at least "
                             f"{min_examples} examples need more than {len(labels)} examples")
    rng = np.random.default_rng([int(seed), 0xD1])
    members = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    for _ in range(MAX_DRAWS):
        parts: list[list[np.ndarray]] = [[] for _ in range(shards)]
        for indices in members:
            share = rng.dirichlet(np.full(shards, alpha))
            cuts = np.rint(np.cumsum(share) * len(indices)).astype(np.int64)
            cuts[-1] = len(indices)
            for j, piece in enumerate(np.split(indices, cuts[:-1])):
                parts[j].append(piece)
        result = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(r) for r in result) >= min_examples:
            return result
    raise PartitionError(f"partition.alpha: no Dirichlet({alpha}) draw in {MAX_DRAWS} gave every "
                         f"one of {shards} shards at least {min_examples} examples; raise alpha "
                         "or lower shards")


def _label_pieces(labels: np.ndarray, shards: int, classes: int, seed: int) -> list[np.ndarray]:
    pieces = shards * classes
    if pieces > len(labels):
        raise PartitionError(f"partition.classes: {shards} shards x {classes} pieces need at "
                             f"least {pieces} examples, there are {len(labels)}")
    rng = np.random.default_rng([int(seed), 0x5A])
    shuffled = rng.permutation(len(labels))
    order = shuffled[np.argsort(labels[shuffled], kind="stable")]
    cut = np.array_split(order, pieces)
    dealt = rng.permutation(pieces)
    return [np.sort(np.concatenate([cut[p] for p in dealt[j * classes:(j + 1) * classes]]))
            for j in range(shards)]


def _by_key(keys: np.ndarray, shards: int | None) -> list[np.ndarray]:
    if keys.ndim != 1:
        raise PartitionError(f"train_keys must hold one key per example, got shape {keys.shape}")
    distinct, inverse = np.unique(keys, return_inverse=True)
    group = inverse if shards is None else inverse % shards
    count = len(distinct) if shards is None else shards
    if shards is not None and shards > len(distinct):
        raise PartitionError(f"partition.shards: {shards} shards but the data has only "
                             f"{len(distinct)} distinct keys")
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(1, count))
    return [np.sort(part).astype(np.int64) for part in np.split(order, bounds)]


def label_counts(labels: Any, shards: list[np.ndarray]) -> np.ndarray:
    """A (P, classes) table: how many examples of each class each shard holds."""
    classes = class_labels(labels)
    width = int(classes.max()) + 1 if len(classes) else 0
    return np.stack([np.bincount(classes[s], minlength=width) for s in shards])
