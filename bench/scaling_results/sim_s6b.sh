#!/usr/bin/env bash
# Follow-up of sim_s6.sh (same flags and task times): the one-client settings to 560 s, and rounds of
# the live clients' Adam steps summed at server_lr 1 (fedbuff_live: one round = the mean of every
# client's 1- or 2-step Adam delta, close to a large-batch step).
#   JOBS=1 bash bench/scaling_results/sim_s6b.sh OUTFILE [JOB NUMBERS...]
set -u
cd "$(dirname "$0")/../.."
out=${1:-sim_s6b.txt}
shift || true
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
LIVE=webnn.merge.fedbuff_live:FedBuffLive
common="--data text --model embed --hidden 256 --seeds 1 2 3 --target 0.99 --eval-seconds 1.75 --max-updates 1000000 --milestones 0.3 0.32 0.33 0.34 0.345 0.35 0.36"
T1=0.207 T2=0.359 T10=1.579 T20=3.095 T10B64=2.80
jobs=(
  # 1-6: one client to 560 s (batch 64: 10 steps cost 0.055 + 1.804 x 1.52 s, c(64)/c(32) of
  # bench/step_time.mjs, docs/scaling.md)
  "--clients 1 --until 560 --task-seconds $T10 --config 'average|adam lr=0.01'"
  "--clients 1 --until 560 --task-seconds $T10 --config 'average|adam lr=0.005'"
  "--clients 1 --until 560 --task-seconds $T10 --config 'average|adam lr=0.007'"
  "--clients 1 --until 560 --task-seconds $T10 --config 'average|adam lr=0.02'"
  "--clients 1 --until 560 --task-seconds $T20 --config 'average|adam lr=0.01 steps=20'"
  "--clients 1 --until 560 --task-seconds $T10B64 --config 'average|adam lr=0.014 batch=64'"
  # 7-10: 16 clients, rounds of Adam steps at server_lr 1
  "--clients 16 --until 120 --task-seconds $T1 --config '$LIVE server_lr=1|adam lr=0.02 steps=1'"
  "--clients 16 --until 120 --task-seconds $T1 --config '$LIVE server_lr=1|adam lr=0.04 steps=1'"
  "--clients 16 --until 120 --task-seconds $T2 --config '$LIVE server_lr=1|adam lr=0.02 steps=2'"
  "--clients 16 --until 120 --task-seconds $T2 --config 'average|adam lr=0.04 steps=2'"
  # 11-12: 8 clients
  "--clients 8 --until 150 --task-seconds $T1 --config '$LIVE server_lr=1|adam lr=0.02 steps=1'"
  "--clients 8 --until 150 --task-seconds $T2 --config 'average|adam lr=0.03 steps=2'"
)
. bench/scaling_results/sim_jobs.sh
run_jobs "$@"
