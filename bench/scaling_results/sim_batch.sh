#!/usr/bin/env bash
# Smaller (and larger) client batches (8, 16; one client also 64 examples a step) on the frozen corpus (Tiny Shakespeare, the
# default of bench/scaling_sim.py): text workload, 3 seeds, target 0.35 with milestones on the
# way. The simulator charges a task of L steps of B examples L B / 320 + 0.05 units; the wall
# times of docs/scaling.md ("Smaller client batches") rescale them with the per-step costs
# measured in Node (bench/step_time.mjs): t_wall = t_sim (L c(B) + 0.05) / (L B / 320 + 0.05),
# exact for clients of one speed (every task time scales by the same factor).
# One job per line, JOBS at a time (default 2: a shared 2-core machine), one thread each, niced:
#   bash bench/scaling_results/sim_batch.sh OUTFILE [JOB...]   (job numbers, 1-based; default all)
#   TARGET=0.375 bash bench/scaling_results/sim_batch.sh OUTFILE 1 4 8 10 5 11 14   (the 0.375 runs)
# Each job's command line is written before its output.
set -u
cd "$(dirname "$0")/../.."
out=${1:-sim_batch.txt}
shift
target=${TARGET:-0.35}
milestones="0.3 0.325 0.34"
[ "$target" != 0.35 ] && milestones="0.3 0.325 0.34 0.35 0.36"
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
LIVE=webnn.merge.fedbuff_live:FedBuffLive
common="--data text --hidden 256 --seeds 1 2 3 --target $target --milestones $milestones --overhead 0.05 --max-updates 12000"
jobs=(
  "--clients 1 --config 'average|adam lr=0.005 batch=8'"
  "--clients 1 --config 'average|adam lr=0.01 batch=8'"
  "--clients 8 16 --config 'average|adam lr=0.01 batch=8 steps=2'"
  "--clients 16 --config '$LIVE server_lr=0.5|adam lr=0.02 batch=8 steps=5'"
  "--clients 8 --config '$LIVE server_lr=0.5|adam lr=0.014 batch=8 steps=5'"
  "--clients 1 --config 'average|adam lr=0.0025 batch=8'"
  "--clients 1 --config 'average|adam lr=0.007 batch=16'"
  "--clients 1 --config 'average|adam lr=0.01 batch=16'"
  "--clients 8 16 --config 'average|adam lr=0.014 batch=16 steps=2'"
  "--clients 16 --config '$LIVE server_lr=0.5|adam lr=0.028 batch=16 steps=5'"
  "--clients 8 --config '$LIVE server_lr=0.5|adam lr=0.02 batch=16 steps=5'"
  "--clients 1 --config 'average|adam lr=0.005 batch=16'"
  "--clients 1 --config 'average|adam lr=0.01 batch=64'"
  "--clients 1 --config 'average|adam lr=0.014 batch=64'"
  "--clients 1 --config 'average|adam lr=0.01'"
)
. bench/scaling_results/sim_jobs.sh
run_jobs "$@"
