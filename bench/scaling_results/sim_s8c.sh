#!/usr/bin/env bash
# Session 8: the best settings of sim_s8.sh / sim_s8b.sh from the checkpoint with seeds 1-6, each seed's
# first time at 0.37, 0.38 and 0.39 (from --json histories), the medians over the 6 seeds and the speedups.
#   bash bench/scaling_results/sim_s8c.sh OUTDIR   (writes OUTDIR/{one,8,16}.json, prints the table)
set -u
cd "$(dirname "$0")/../.."
dir=${1:-sim_s8c}
mkdir -p "$dir"
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
CKPT=${CKPT:-bench/scaling_results/text_ckpt_s8.npy}
common="--data text --model embed --hidden 256 --target 0.99 --eval-seconds 1.75 --max-updates 1000000 --init-weights $CKPT --seeds 1 2 3 4 5 6 --json"
run() {
  local name=$1
  shift
  [ -s "$dir/$name.json" ] || nice -n 10 env OMP_NUM_THREADS=1 $PY bench/scaling_sim.py $common "$@" \
    > "$dir/$name.json" 2> /dev/null
}
run one --clients 1 --until 560 --task-seconds 2.80 --config 'average|adam lr=0.007 batch=64'
run 8 --clients 8 --until 200 --task-seconds 0.877 --config 'average|adam lr=0.03 batch=64 steps=3'
run 16 --clients 16 --until 150 --task-seconds 0.329 --config 'average|adam lr=0.04 batch=64 steps=1'
$PY - "$dir" <<'PY'
import json, math, sys
import numpy as np
levels = (0.37, 0.38, 0.39)
rows = {}
for name in ("one", "8", "16"):
    row = json.load(open(f"{sys.argv[1]}/{name}.json"))[0]
    per = [[next((t for t, _, a in h if a >= x), math.inf) for h in row["histories"]] for x in levels]
    rows[name] = (row["config"], per)
print("| clients | setting | " + " | ".join(f"t({x}) per seed 1-6; median; speedup" for x in levels) + " |")
print("|---|---|" + "---|" * len(levels))
base = [float(np.median(p)) for p in rows["one"][1]]
for name, (config, per) in rows.items():
    cells = []
    for i, p in enumerate(per):
        med = float(np.median(p))
        cells.append(" ".join(f"{t:.0f}" for t in p) + f"; **{med:.1f}**; {base[i] / med:.2f}x")
    print(f"| {name} | `{config}` | " + " | ".join(cells) + " |")
PY
