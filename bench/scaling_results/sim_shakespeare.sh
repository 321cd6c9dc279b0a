#!/usr/bin/env bash
# The simulator table of docs/scaling.md on the frozen corpus (Tiny Shakespeare, the default of
# bench/scaling_sim.py): text workload, 3 seeds, target 0.375 with milestones on the way (the
# chosen device target 0.35 among them); a task of L steps costs L/10 + 0.05 of a 10-step task.
# One job per line, JOBS at a time (default 2: a shared 2-core machine), one thread each, niced:
#   bash bench/scaling_results/sim_shakespeare.sh OUTFILE
# Each job's command line is written before its output.
set -u
cd "$(dirname "$0")/../.."
out=${1:-sim_shakespeare.txt}
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
LIVE=webnn.merge.fedbuff_live:FedBuffLive
common="--data text --hidden 256 --seeds 1 2 3 --target 0.375 --milestones 0.3 0.325 0.34 0.35 0.36 --overhead 0.05 --max-updates 3000"
jobs=(
  "--clients 1 --config 'average|adam lr=0.01'"
  "--clients 16 --config '$LIVE server_lr=0.5|adam lr=0.04 steps=5'"
  "--clients 8 --config '$LIVE server_lr=0.5|adam lr=0.028 steps=5'"
  "--clients 8 16 --config 'average|adam lr=0.01'"
  "--clients 16 --spread 4 --config '$LIVE server_lr=0.5|adam lr=0.04 steps=5'"
  "--clients 8 16 --config 'average|adam lr=0.02 steps=2'"
  "--clients 8 --config '$LIVE server_lr=0.5|adam lr=0.04 steps=5'"
  "--clients 16 --spread 4 --config 'average|adam lr=0.02 steps=2'"
  "--clients 1 --config 'average|adam lr=0.01 steps=5'"
  "--clients 1 --config 'average|adam lr=0.04 batch=512'"
  "--clients 1 --config 'average|adam lr=0.02'"
)
. bench/scaling_results/sim_jobs.sh
run_jobs
