#!/usr/bin/env bash
# Wall times to target from bench/scaling_sim.py output (sim_batch.sh and sim_shakespeare.sh
# lines), with measured per-step costs c(B) (units of a 10-step x 32-example task, from
# bench/step_time.mjs) in place of the simulator's B / 320:
#   t_wall = t_sim (L c(B) + 0.05) / (L B / 320 + 0.05)
# exact for clients of one speed (every task's time scales by the same factor; only the start
# offsets, under 0.05, do not). Speedups against BASE (the best one-client wall time) and
# against the same batch size's best one-client wall time (of the lines given).
#   bash bench/scaling_results/sim_batch_wall.sh "8=0.0384 16=0.0591 32=0.1 64=0.174" SIM_OUTPUT...
set -eu
cd "$(dirname "$0")/../.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
costs=$1
shift
"$PY" - "$costs" "$@" <<'PYEOF'
import re
import statistics
import sys

costs = {int(k): float(v) for k, v in (item.split("=") for item in sys.argv[1].split())}
rows = []
for path in sys.argv[2:]:
    for line in open(path):
        m = re.match(r"(\S.*?)\s+n=\s*(\d+) updates=\[(.*?)\] times=\[(.*?)\]", line)
        if not m:
            continue
        config, n = m.group(1).strip(), int(m.group(2))
        times = [float(t) for t in re.findall(r"[\d.]+|inf", m.group(4).replace("np.float64", ""))]
        batch = int(re.search(r"batch=(\d+)", config).group(1)) if "batch=" in config else 32
        steps = int(re.search(r"steps=(\d+)", config).group(1)) if "steps=" in config else 10
        factor = (steps * costs[batch] + 0.05) / (steps * batch / 320 + 0.05)
        wall = [t * factor for t in times]
        rows.append((config, n, batch, steps, statistics.median(times), statistics.median(wall),
                     min(wall), max(wall)))
one = {}
for config, n, batch, _, _, wall, _, _ in rows:
    if n == 1:
        one[batch] = min(one.get(batch, float("inf")), wall)
base = min(one.values())
print(f"costs c(B) {costs}; best one-client wall time {base:.1f} "
      f"(per batch: {', '.join(f'{b}: {t:.1f}' for b, t in sorted(one.items()))})")
print(f"{'config':66s} {'n':>2s} {'B':>3s} {'L':>2s} {'t_sim':>7s} {'t_wall (seeds)':>22s} "
      f"{'vs best 1':>9s} {'vs same B':>9s}")
for config, n, batch, steps, sim, wall, lo, hi in rows:
    same = one.get(batch)
    print(f"{config:66s} {n:2d} {batch:3d} {steps:2d} {sim:7.1f} {wall:7.1f} ({lo:5.1f}-{hi:5.1f})"
          f" {base / wall:8.2f}x {(same / wall if same else float('nan')):8.2f}x")
PYEOF
