#!/usr/bin/env bash
# Session 8, issue 15: does the text workload's gradient noise scale grow later in training?
# B_simple (McCandlish et al. 2018) along the one-client run (the simulator's copy of the
# benchmark's model; session 6's device baseline `average|adam lr=0.01`, 10-step tasks of 32,
# 1.58 s a task) to about 1,500 tasks (2,400 device seconds), seeds 1-3, 65,536 training windows
# per probe, probes every 100 tasks and at the first merge at 0.30, 0.33, 0.35, 0.36, 0.37, 0.38,
# 0.39, 0.40, 0.42; the probes' weights saved under DIR (checkpoints for scaling_sim.py
# --init-weights); then the same for the best one-client setting (batch 64, Adam 0.014, 2.80 s a
# task) of seed 1.
#   bash bench/scaling_results/noise_s8.sh OUTFILE DIR
set -u
cd "$(dirname "$0")/../.."
out=${1:-noise_s8.txt}
dir=${2:-/tmp/noise_s8}
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
levels="0.30 0.33 0.35 0.36 0.37 0.38 0.39 0.40 0.42"
tasks=$(seq -s ' ' 100 100 1500)
run() {
  echo "\$ python bench/scaling_results/noise_scale.py $*" >> "$out"
  nice -n 10 env OMP_NUM_THREADS=1 $PY bench/scaling_results/noise_scale.py "$@" >> "$out" 2>&1
  echo >> "$out"
}
for seed in 1 2 3; do
  run --seed "$seed" --examples 65536 --tasks $tasks --at-accuracy $levels --save-dir "$dir/b32"
done
run --seed 1 --examples 65536 --config 'average|adam lr=0.014 batch=64' --task-seconds 2.80 \
  --tasks $(seq -s ' ' 50 50 800) --at-accuracy $levels --save-dir "$dir/b64"
