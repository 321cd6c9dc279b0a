"""Paired difference between any two entries of a results directory, by seed.

`wnn compare --report` gives each entry against the config's reference (its first entry); the
docs also quote other pairs (e.g. median-signflip against mean-signflip). This prints, for
ENTRY − OTHER over the seeds both ran: final accuracy, AUC over merges [0, H] (H from the whole
directory, as the report's), and worst-class accuracy, each as the mean paired difference with its
95 % percentile-bootstrap interval (10,000 resamples, webnn.compare.stats.paired_difference);
`*` marks an interval that excludes 0. `--seeds 1-5` restricts the seeds (e.g. the first look).

    python experiments/paired.py DIR ENTRY OTHER [--seeds 1-5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from webnn.compare.results import Run, read_runs
from webnn.compare.stats import Interval, area_under_curve, paired_difference
from webnn.compare.summary import auc_horizon


def _seeds(text: str | None) -> set[int] | None:
    if not text:
        return None
    low, _, high = text.partition("-")
    return set(range(int(low), int(high or low) + 1))


def _metric(runs: list[Run], label: str, value) -> dict[int, float]:
    return {r.record.seed: value(r) for r in runs if r.record.label == label and r.rows}


def _fmt(interval: Interval) -> str:
    star = " *" if interval.excludes_zero else ""
    return (f"{interval.estimate:+.3f} [{interval.low:+.3f}, {interval.high:+.3f}]{star} "
            f"(n = {interval.n})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("entry")
    parser.add_argument("other")
    parser.add_argument("--seeds", help="a seed range, e.g. 1-5")
    args = parser.parse_args()
    runs = [r for r in read_runs(args.dir) if r.record.status == "ok"]
    labels = {r.record.label for r in runs}
    for label in (args.entry, args.other):
        if label not in labels:
            parser.error(f"{args.dir}: no entry {label!r} (entries: {', '.join(sorted(labels))})")
    horizon = auc_horizon(runs)
    keep = _seeds(args.seeds)
    if keep is not None:
        runs = [r for r in runs if r.record.seed in keep]
    metrics = {
        "final acc": lambda r: r.rows[-1].val_accuracy,
        f"AUC 0-{horizon:g}": lambda r: area_under_curve(
            [x.merges for x in r.rows], [x.val_accuracy for x in r.rows], horizon),
        "worst-class": lambda r: r.rows[-1].worst_class_accuracy,
    }
    print(f"{args.entry} − {args.other} ({args.dir}, seeds {args.seeds or 'all'})")
    for name, value in metrics.items():
        diff = paired_difference(_metric(runs, args.entry, value), _metric(runs, args.other, value))
        print(f"  {name:12s} {_fmt(diff)}")


if __name__ == "__main__":
    main()
