#!/usr/bin/env bash
# Follow-up of sim_s6.sh (same flags and task times): larger rates for the large-batch ideal, and the
# last candidates at 8 and 16 clients that webnn can run today (no warm-up).
#   JOBS=1 bash bench/scaling_results/sim_s6d.sh OUTFILE [JOB NUMBERS...]
set -u
cd "$(dirname "$0")/../.."
out=${1:-sim_s6d.txt}
shift || true
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
LIVE=webnn.merge.fedbuff_live:FedBuffLive
common="--data text --model embed --hidden 256 --seeds 1 2 3 --target 0.99 --eval-seconds 1.75 --max-updates 1000000 --milestones 0.3 0.32 0.33 0.34 0.345 0.35 0.36"
T1=0.207 T2=0.359 T10=1.579
jobs=(
  "--clients 1 --until 200 --task-seconds $T10 --config 'average|adam lr=0.08 batch=512'"
  "--clients 1 --until 200 --task-seconds $T10 --config 'average|adam lr=0.04 batch=256'"
  "--clients 16 --until 120 --task-seconds $T2 --config '$LIVE server_lr=0.5|adam lr=0.08 steps=2'"
  "--clients 16 --until 120 --task-seconds $T1 --config 'average|adam lr=0.04 steps=1'"
  "--clients 8 --until 150 --task-seconds $T2 --config 'average|adam lr=0.04 steps=2'"
  "--clients 8 --until 150 --task-seconds $T2 --config '$LIVE server_lr=0.5|adam lr=0.056 steps=2 warmup=20'"
)
. bench/scaling_results/sim_jobs.sh
run_jobs "$@"
