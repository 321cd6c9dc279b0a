#!/usr/bin/env bash
# The simulator grid behind docs/scaling.md's "levers" table (text workload, target 0.40 with
# milestones; seeds 1 and 2, one job each; tasks cost steps x batch / 320 + 0.05 of a 10-step task). One job per
# line, run 16 at a time, one thread each:  bash bench/scaling_results/sim_grid.sh OUTFILE
set -u
out=${1:-sim_grid.txt}
LIVE=webnn.merge.fedbuff_live:FedBuffLive
common="--data text --hidden 256 --target 0.40 --milestones 0.33 0.35 0.37 0.38 0.39 --overhead 0.05 --max-updates 1500"
jobs=(
  "--clients 1 --config 'average|adam lr=0.01'"
  "--clients 1 --config 'average|adam lr=0.02'"
  "--clients 1 --config 'average|adam lr=0.02 steps=5'"
  "--clients 1 --config '$LIVE server_lr=1|adam lr=0.01'"
)
for n in 8 16; do
  jobs+=(
    "--clients $n --config 'average|adam lr=0.02'"
    "--clients $n --config 'average|adam lr=0.02 steps=5'"
    "--clients $n --config '$LIVE server_lr=1|adam lr=0.02'"
    "--clients $n --config '$LIVE server_lr=1|adam lr=0.04'"
    "--clients $n --config '$LIVE server_lr=1|adam lr=0.08'"
    "--clients $n --config '$LIVE server_lr=1|adam lr=0.04 steps=5'"
    "--clients $n --config '$LIVE server_lr=0.5|adam lr=0.04'"
    "--clients $n --config '$LIVE server_lr=1|adam lr=0.04 reset'"
  )
done
jobs+=(
  "--clients 16 --spread 4 --config 'average|adam lr=0.02'"
  "--clients 16 --spread 4 --config '$LIVE server_lr=1|adam lr=0.04'"
  "--clients 8 --spread 4 --config '$LIVE server_lr=1|adam lr=0.04'"
)
mkdir -p /tmp/simgrid
i=0
for j in "${jobs[@]}"; do
  i=$((i + 1))
  for seed in ${SIM_SEEDS:-1 2}; do
  echo "timeout ${SIM_TIMEOUT:-150} env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python3 bench/scaling_sim.py $common --seeds $seed $j > /tmp/simgrid/$i.$seed.txt 2>&1"
  done
done | xargs -d '\n' -P "${SIM_PARALLEL:-16}" -I{} bash -c {}
for f in $(ls /tmp/simgrid/*.txt | sort -V); do
  b=$(basename "$f" .txt); echo "# job ${b%.*} seed ${b#*.}: ${jobs[$(( ${b%.*} - 1 ))]}"; cat "$f"
done > "$out"
