"""Paired difference between any two entries of a results directory, by seed.

`wnn compare --report` gives each entry against the config's reference (its first entry); the
docs also quote other pairs (e.g. median-signflip against mean-signflip). This prints, for
ENTRY − OTHER over the seeds both ran: final accuracy, AUC over merges [0, H] (H from the whole
directory, as the report's), and worst-class accuracy, each as the mean paired difference with its
95 % percentile-bootstrap interval (10,000 resamples, webnn.compare.stats.paired_difference);
`*` marks an interval that excludes 0. `--seeds 1-5` restricts the seeds (e.g. the first look).
`--against DIR2`: the difference of the paired differences, per seed (ENTRY − OTHER in DIR) minus
(ENTRY − OTHER in DIR2), over the seeds both ran, AUC over [0, min(H, H2)]: e.g. the skew's part
of a gap (DIR under skew, DIR2 on IID data) or the 32-client gap against the 16-client one.

`--labels E2 O2`: the two entries' labels in DIR2 where they differ there.

    python experiments/paired.py DIR ENTRY OTHER [--seeds 1-5] [--against DIR2 [--labels E2 O2]]
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


def _differences(runs: list[Run], entry: str, other: str, value) -> dict[int, float]:
    mine, theirs = _metric(runs, entry, value), _metric(runs, other, value)
    return {s: mine[s] - theirs[s] for s in mine.keys() & theirs.keys()}


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
    parser.add_argument("--against", type=Path, help="a second results directory (see above)")
    parser.add_argument("--labels", nargs=2, metavar=("E2", "O2"),
                        help="ENTRY's and OTHER's labels in DIR2")
    args = parser.parse_args()
    if args.labels and not args.against:
        parser.error("--labels needs --against")
    pairs = [(args.dir, (args.entry, args.other))]
    if args.against:
        pairs.append((args.against, tuple(args.labels or (args.entry, args.other))))
    loaded = []
    for directory, wanted in pairs:
        runs = [r for r in read_runs(directory) if r.record.status == "ok"]
        labels = {r.record.label for r in runs}
        for label in wanted:
            if label not in labels:
                parser.error(f"{directory}: no entry {label!r} "
                             f"(entries: {', '.join(sorted(labels))})")
        loaded.append(runs)
    horizon = min(auc_horizon(runs) for runs in loaded)
    keep = _seeds(args.seeds)
    if keep is not None:
        loaded = [[r for r in runs if r.record.seed in keep] for runs in loaded]
    runs = loaded[0]
    metrics = {
        "final acc": lambda r: r.rows[-1].val_accuracy,
        f"AUC 0-{horizon:g}": lambda r: area_under_curve(
            [x.merges for x in r.rows], [x.val_accuracy for x in r.rows], horizon),
        "worst-class": lambda r: r.rows[-1].worst_class_accuracy,
    }
    against = f" minus the same in {args.against}" if args.against else ""
    print(f"{args.entry} − {args.other} ({args.dir}{against}, seeds {args.seeds or 'all'})")
    for name, value in metrics.items():
        if args.against:
            diff = paired_difference(_differences(runs, args.entry, args.other, value),
                                     _differences(loaded[1], *pairs[1][1], value))
        else:
            diff = paired_difference(_metric(runs, args.entry, value),
                                     _metric(runs, args.other, value))
        print(f"  {name:12s} {_fmt(diff)}")


if __name__ == "__main__":
    main()
