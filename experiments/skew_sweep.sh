#!/bin/sh
# The label-skew sweep of experiments/skew_sweep.toml: the same comparison at Dirichlet
# alpha = 0.1, 0.5, 1 and with IID data (kind "iid": alpha = infinity). Only the [partition]
# table changes between the points; each point is one `wnn compare` run into OUT/alpha-<A>/
# (config as run, runs/, summary, plots, provenance), then the Python below draws the paired
# differences against average per alpha into OUT (skew_sweep.md, skew_sweep.json,
# paired_differences_vs_alpha.svg).
#   experiments/skew_sweep.sh [SEEDS] [OUT]     (default: 1,2,3,4,5 and results/skew_sweep)
# Seeds run as separate parts can be merged per point as docs/experiments.md describes
# ("Spreading one experiment over processes or machines"); `experiments/skew_sweep.sh --figure
# OUT` then redraws the sweep's table and figure from OUT/alpha-*/ alone.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python}
if [ "${1:-}" = --figure ]; then FIGURE_ONLY=1; shift; else FIGURE_ONLY=0; fi
SEEDS=${1:-1,2,3,4,5}
OUT=${2:-results/skew_sweep}
WNN=${WNN:-wnn}
[ "$FIGURE_ONLY" = 1 ] && OUT=${1:-results/skew_sweep}
for A in 0.1 0.5 1 iid; do
  [ "$FIGURE_ONLY" = 1 ] && break
  mkdir -p "$OUT/alpha-$A"
  if [ "$A" = iid ]; then part='s/^kind = "dirichlet"$/kind = "iid"/'
  else part="s/^alpha = 0\\.1\$/alpha = $A/"; fi
  # the variant lives under OUT, so its relative model/data paths become absolute
  sed -e "s#= \"\\.\\./#= \"$ROOT/#" -e "s/^name = \"skew_sweep\"\$/name = \"skew_sweep_alpha-$A\"/" \
      -e "$part" "$ROOT/experiments/skew_sweep.toml" > "$OUT/skew_sweep_alpha-$A.toml"
  $WNN compare "$OUT/skew_sweep_alpha-$A.toml" --seeds "$SEEDS" --out "$OUT/alpha-$A" || [ $? -eq 1 ]
done
# The sweep's own table and figure: per point, each entry's paired difference against average
# (the point's summary.json: mean over seeds with its 95 % percentile-bootstrap interval); and
# how much of it is the skew's: per seed, (entry - average) at alpha minus (entry - average) on
# IID data, final accuracy and AUC over merges [0, H] with one H for every point (the fewest
# merges of any run that did not end on its timeout), bootstrapped the same way.
"$PYTHON" - "$OUT" <<'PY'
import json
import sys
from pathlib import Path

from webnn.compare.results import read_runs
from webnn.compare.stats import area_under_curve, paired_difference

out = Path(sys.argv[1])
points = [p for p in ("0.1", "0.5", "1", "iid") if (out / f"alpha-{p}" / "summary.json").is_file()]
shown = {p: ("∞ (iid)" if p == "iid" else p) for p in points}
summaries = {p: json.loads((out / f"alpha-{p}" / "summary.json").read_text())["strategies"]
             for p in points}
runs = {p: [r for r in read_runs(out / f"alpha-{p}") if r.record.status == "ok" and r.rows]
        for p in points}
labels = [s["label"] for s in summaries[points[0]]]
reference, others = labels[0], labels[1:]
stopped = [r for p in points for r in runs[p] if r.record.stopped_by != "timeout"]
horizon = float(min(r.rows[-1].merges for r in stopped))
per_seed = {}  # (point, label, metric) -> {seed: value}
for p in points:
    for r in runs[p]:
        final = r.rows[-1].val_accuracy
        auc = area_under_curve([x.merges for x in r.rows], [x.val_accuracy for x in r.rows],
                               horizon)
        per_seed.setdefault((p, r.record.label, "final"), {})[r.record.seed] = final
        per_seed.setdefault((p, r.record.label, "auc"), {})[r.record.seed] = auc


def gap(p, label, metric):
    mine, ref = per_seed[(p, label, metric)], per_seed[(p, reference, metric)]
    return {s: mine[s] - ref[s] for s in mine.keys() & ref.keys()}


def cell(d):
    if not d or d.get("low") is None or d["low"] != d["low"]:
        return "-"
    star = " \\*" if d["low"] > 0 or d["high"] < 0 else ""
    return f"{d['estimate']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]{star}".replace("-", "−")


table = {"horizon": horizon, "points": {}}
lines = ["| alpha | entry | runs | final acc (mean ± sd) | final acc − average [95% CI] "
         "| AUC − average [95% CI] | worst-class − average [95% CI] "
         f"| final acc: alpha − IID [95% CI] | AUC 0–{horizon:g}: alpha − IID [95% CI] |",
         "|---|---|---|---|---|---|---|---|---|"]
for p in points:
    by_label = {s["label"]: s for s in summaries[p]}
    table["points"][p] = {}
    for label in labels:
        s = by_label[label]
        row = {key: s.get(key) for key in ("runs", "final_accuracy_mean", "final_accuracy_std",
                                           "final_accuracy_diff", "auc_diff", "worst_class_diff",
                                           "worst_class_mean", "auc", "auc_horizon")}
        if label != reference and p != "iid" and "iid" in points:
            for metric in ("final", "auc"):
                now, iid = gap(p, label, metric), gap("iid", label, metric)
                iv = paired_difference(now, iid)
                row[f"{metric}_vs_iid"] = {"estimate": iv.estimate, "low": iv.low,
                                           "high": iv.high, "n": iv.n}
        table["points"][p][label] = row
        lines.append(
            f"| {shown[p]} | {label} | {s['runs']} | {s['final_accuracy_mean']:.3f} ± "
            f"{s['final_accuracy_std']:.3f} | {cell(row['final_accuracy_diff'])} | "
            f"{cell(row['auc_diff'])} | {cell(row['worst_class_diff'])} | "
            f"{cell(row.get('final_vs_iid'))} | {cell(row.get('auc_vs_iid'))} |")
(out / "skew_sweep.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
(out / "skew_sweep.json").write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.hashsalt"] = "skew_sweep"  # the same SVG from the same runs
from matplotlib.figure import Figure

fig = Figure(figsize=(12, 4), dpi=110)
axes = fig.subplots(1, 3)
colors = matplotlib.colormaps["tab10"]
xs = list(range(len(points)))
for ax, key, title in zip(axes, ("final_accuracy_diff", "auc_diff", "worst_class_diff"),
                          ("final accuracy", "AUC (mean accuracy over merges)",
                           "worst-class accuracy")):
    for i, label in enumerate(others):
        ds = [table["points"][p][label][key] or {} for p in points]
        est = [d.get("estimate", float("nan")) for d in ds]
        low = [e - d.get("low", e) for e, d in zip(est, ds)]
        high = [d.get("high", e) - e for e, d in zip(est, ds)]
        offset = (i - (len(others) - 1) / 2) * 0.08
        ax.errorbar([x + offset for x in xs], est, yerr=[low, high], fmt="o-", capsize=4,
                    color=colors((i + 1) % 10), label=f"{label} − {reference}")
    ax.axhline(0, color="0.4", lw=1)
    ax.set_xticks(xs, [shown[p] for p in points])
    ax.set_xlabel("Dirichlet alpha (smaller: more skew)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
axes[0].set_ylabel("paired difference, mean over seeds [95% CI]")
axes[0].legend(fontsize=8)
fig.suptitle("skew_sweep: paired differences against average per label skew")
fig.tight_layout()
fig.savefig(out / "paired_differences_vs_alpha.svg", format="svg", metadata={"Date": None})
print((out / "skew_sweep.md").read_text(encoding="utf-8"))
PY
