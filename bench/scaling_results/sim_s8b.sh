#!/usr/bin/env bash
# Session 8, second batch of sim_s8.sh (same flags, same checkpoint): the one-client baseline
# from the checkpoint at other Adam rates (0.007 was the best of sim_s8's 0.014 / 0.007 / 0.003),
# 8 and 16 clients at rates between sim_s8's, and the best settings with seeds 4-6.
#   JOBS=1 bash bench/scaling_results/sim_s8b.sh OUTFILE [JOB NUMBERS...]
set -u
cd "$(dirname "$0")/../.."
out=${1:-sim_s8b.txt}
shift || true
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
CKPT=${CKPT:-bench/scaling_results/text_ckpt_s8.npy}
[ -f "$CKPT" ] || { echo "no $CKPT: run sim_s8.sh first (it makes the checkpoint)" >&2; exit 1; }
base="--data text --model embed --hidden 256 --target 0.99 --eval-seconds 1.75 --max-updates 1000000 --milestones 0.34 0.35 0.36 0.37 0.38 0.39 0.40 --init-weights $CKPT"
common="$base --seeds 1 2 3"
T1B64=0.329 T3B64=0.877 T10B64=2.80
jobs=(
  # 1-2: one client, batch 64, Adam 0.005 / 0.01
  "--clients 1 --until 560 --task-seconds $T10B64 --config 'average|adam lr=0.005 batch=64'"
  "--clients 1 --until 560 --task-seconds $T10B64 --config 'average|adam lr=0.01 batch=64'"
  # 3: 8 clients, Adam 0.02, 3 steps; 4: 16 clients, Adam 0.03, 1 step
  "--clients 8 --until 200 --task-seconds $T3B64 --config 'average|adam lr=0.02 batch=64 steps=3'"
  "--clients 16 --until 150 --task-seconds $T1B64 --config 'average|adam lr=0.03 batch=64 steps=1'"
  # 5-7: seeds 4-6 of the best one client and the best 8 and 16 of sim_s8
  "--seeds 4 5 6 --clients 1 --until 560 --task-seconds $T10B64 --config 'average|adam lr=0.007 batch=64'"
  "--seeds 4 5 6 --clients 8 --until 200 --task-seconds $T3B64 --config 'average|adam lr=0.03 batch=64 steps=3'"
  "--seeds 4 5 6 --clients 16 --until 150 --task-seconds $T1B64 --config 'average|adam lr=0.04 batch=64 steps=1'"
)
. bench/scaling_results/sim_jobs.sh
run_jobs "$@"
