#!/usr/bin/env bash
# Server Adam on rounds over the live clients (fedbuff_live server_optimizer=adam; FedAdam, Reddi
# et al. 2021, on FedBuff-style rounds, Nguyen et al. 2022) with clients taking 1 or 2 plain SGD
# steps per task (delta = -lr g), on the frozen corpus at target 0.35, with sim_shakespeare.sh's
# flags; one job at a time (a 2-core machine shared with others). tau=1e-7 (TF.js Adam's eps) keeps
# the server step independent of the client rate (|D| >> tau).
#   bash bench/scaling_results/sim_server_adam.sh OUTFILE 'JOB' ['JOB' ...]
#   a JOB: "--clients 1 16 --seeds 1 2 --config 'fedbuff_live server_optimizer=adam server_lr=0.01
#           tau=1e-7|sgd lr=1 steps=1'" (the jobs run are in bench/scaling_results/
#           sim_server_adam_2026-12-01.txt, each above its output)
set -u
cd "$(dirname "$0")/../.."
out=${1:?output file}
shift
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
common="--data text --hidden 256 --target 0.35 --milestones 0.3 0.325 0.34 --overhead 0.05 --max-updates 8000"
. bench/scaling_results/sim_jobs.sh
for job in "$@"; do
  sim_job "$job"
done
