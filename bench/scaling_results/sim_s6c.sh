#!/usr/bin/env bash
# Follow-up of sim_s6.sh (same flags and task times): the device plan's 16-client setting with client
# speeds spread over 0.25-1 (device_plan_s6.sh call 2).
#   JOBS=1 bash bench/scaling_results/sim_s6c.sh OUTFILE
set -u
cd "$(dirname "$0")/../.."
out=${1:-sim_s6c.txt}
shift || true
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
common="--data text --model embed --hidden 256 --seeds 1 2 3 --target 0.99 --eval-seconds 1.75 --max-updates 1000000 --milestones 0.3 0.32 0.33 0.34 0.345 0.35 0.36"
T2=0.359
jobs=(
  "--clients 16 --spread 4 --until 150 --task-seconds $T2 --config 'average|adam lr=0.03 steps=2'"
)
. bench/scaling_results/sim_jobs.sh
run_jobs "$@"
