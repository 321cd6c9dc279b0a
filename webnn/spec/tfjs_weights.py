"""Read the weights a TF.js ``weightsManifest`` lists into a model's flat buffer.

Each manifest group's files, concatenated in order, hold the group's tensors back to back
(float32 little-endian). Tensors are matched to the model's weights by name; a name such as
``lstm/lstm_cell/kernel`` (Keras) also matches ``lstm/kernel`` (same layer, same weight).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from webnn.spec.errors import Problem
from webnn.weights import WIRE_DTYPE, WeightLayout


@dataclass(frozen=True)
class _Entry:
    group: int
    index: int
    name: str
    shape: tuple[int, ...]

    @property
    def path(self) -> str:
        return f"$.weightsManifest[{self.group}].weights[{self.index}]"


def _short(name: str) -> str:
    parts = name.split("/")
    return f"{parts[0]}/{parts[-1]}"


def _entries(manifest: Any) -> tuple[list[_Entry], list[Problem]]:
    if not isinstance(manifest, list):
        return [], [Problem("$.weightsManifest", "must be a list of {paths, weights} groups")]
    entries: list[_Entry] = []
    problems: list[Problem] = []
    for g, group in enumerate(manifest):
        weights = group.get("weights") if isinstance(group, dict) else None
        if not isinstance(weights, list):
            problems.append(Problem(f"$.weightsManifest[{g}]", "must be {paths, weights}"))
            continue
        for k, w in enumerate(weights):
            path = f"$.weightsManifest[{g}].weights[{k}]"
            if not isinstance(w, dict) or not isinstance(w.get("name"), str):
                problems.append(Problem(path, "must be {name, shape, dtype}"))
            elif not isinstance(w.get("shape"), list) or not all(
                    isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in w["shape"]):
                problems.append(Problem(f"{path}.shape", "must be a list of integers >= 0"))
            elif w.get("dtype", "float32") != "float32":
                problems.append(Problem(f"{path}.dtype", f"webnn reads float32 weights only, "
                                                          f"got {w['dtype']!r}"))
            elif w.get("quantization") is not None:
                problems.append(Problem(f"{path}.quantization",
                                        "quantized weights are not supported"))
            else:
                entries.append(_Entry(g, k, w["name"], tuple(int(d) for d in w["shape"])))
    return entries, problems


def match(manifest: Any, layout: WeightLayout) -> tuple[dict[str, _Entry], list[Problem]]:
    """Model weight name -> manifest entry; problems for missing, extra or misshapen weights."""
    entries, problems = _entries(manifest)
    if problems:
        return {}, problems
    by_name = {e.name: e for e in entries}
    by_short: dict[str, list[_Entry]] = {}
    for e in entries:
        by_short.setdefault(_short(e.name), []).append(e)
    found: dict[str, _Entry] = {}
    for spec in layout.specs:
        entry = by_name.get(spec.name)
        if entry is None and len(by_short.get(_short(spec.name), [])) == 1:
            entry = by_short[_short(spec.name)][0]
        if entry is None:
            problems.append(Problem("$.weightsManifest", f"lists no weight for the model's "
                                                         f"{spec.name} {list(spec.shape)}"))
        elif entry.shape != spec.shape:
            problems.append(Problem(f"{entry.path}.shape", (
                f"{entry.name} has shape {list(entry.shape)}; the model's {spec.name} has "
                f"{list(spec.shape)}")))
        else:
            found[spec.name] = entry
    used = {id(e) for e in found.values()}
    for e in entries:
        if id(e) not in used and not any(p.path.startswith(e.path) for p in problems):
            problems.append(Problem(e.path, f"weight {e.name!r} is not part of the model"))
    return found, problems


def read_manifest_weights(manifest: Any, layout: WeightLayout, base_dir: Path | None
                          ) -> tuple[np.ndarray | None, list[Problem]]:
    """The flat buffer from the manifest's files (None when `base_dir` is unknown), or problems."""
    found, problems = match(manifest, layout)
    if problems or base_dir is None:
        return None, problems
    groups: dict[int, np.ndarray] = {}
    for g, group in enumerate(manifest):
        if not any(e.group == g for e in found.values()):
            continue
        data, more = _read_group(group, g, base_dir)
        problems += more
        if data is not None:
            groups[g] = data
    if problems:
        return None, problems
    buffer = layout.zeros()
    views = layout.views(buffer)
    offsets = _group_offsets(manifest)
    for name, entry in found.items():
        start = offsets[(entry.group, entry.index)]
        size = int(np.prod(entry.shape, dtype=np.int64))
        views[name][...] = groups[entry.group][start : start + size].reshape(entry.shape)
    return buffer, []


def _group_offsets(manifest: list[dict[str, Any]]) -> dict[tuple[int, int], int]:
    offsets: dict[tuple[int, int], int] = {}
    for g, group in enumerate(manifest):
        total = 0
        for k, w in enumerate(group["weights"]):
            offsets[(g, k)] = total
            total += int(np.prod(w["shape"], dtype=np.int64))
    return offsets


def _read_group(group: dict[str, Any], g: int, base_dir: Path
                ) -> tuple[np.ndarray | None, list[Problem]]:
    paths = group.get("paths")
    where = f"$.weightsManifest[{g}].paths"
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        return None, [Problem(where, "must be a list of weight file names")]
    chunks: list[bytes] = []
    for i, name in enumerate(paths):
        if "://" in name:
            return None, [Problem(f"{where}[{i}]", f"{name!r}: only local files next to "
                                                   "model.json can be read")]
        try:
            chunks.append((base_dir / name).read_bytes())
        except OSError as error:
            return None, [Problem(f"{where}[{i}]", f"cannot read weight file "
                                                   f"{base_dir / name}: {error.strerror}")]
    data = b"".join(chunks)
    needed = 4 * sum(int(np.prod(w["shape"], dtype=np.int64)) for w in group["weights"])
    if len(data) != needed:
        return None, [Problem(where, f"the weight files hold {len(data)} bytes; the manifest's "
                                     f"tensors need {needed} bytes")]
    return np.frombuffer(data, dtype=WIRE_DTYPE).astype(np.float32), []
