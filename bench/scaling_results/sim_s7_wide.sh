#!/usr/bin/env bash
# Session 7: a compute-heavier text workload in the calibrated simulator: the benchmark's text model
# with a 1024-unit hidden layer instead of 256 (197,729 weights instead of 50,537). On the Node cpu
# backend a step of 32 costs about 2.0 steps of the 256-unit model (bench/step_time.mjs --hidden
# 1024: 400-415 ms against 204 ms side by side on the 2-core machine), so 0.30 s on the device; the
# fixed cost of a task is taken as 0.08 s (0.055 s measured for the 256-unit model, whose weights
# are 4x smaller; to be measured on the device). A task of L steps of 32 then takes 0.08 + 0.30 L s.
#   JOBS=1 bash bench/scaling_results/sim_s7_wide.sh OUTFILE [JOB NUMBERS...]
set -u
cd "$(dirname "$0")/../.."
out=${1:-sim_s7_wide.txt}
shift || true
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
LIVE=webnn.merge.fedbuff_live:FedBuffLive
common="--data text --model embed --hidden 1024 --seeds 1 2 3 --target 0.99 --eval-seconds 1.75 --max-updates 1000000 --milestones 0.3 0.32 0.33 0.34 0.35 0.36 0.37 0.38"
T1=0.38 T2=0.68 T10=3.08
jobs=(
  # 1-3: one client to 560 s
  "--clients 1 --until 560 --task-seconds $T10 --config 'average|adam lr=0.01'"
  "--clients 1 --until 560 --task-seconds $T10 --config 'average|adam lr=0.005'"
  "--clients 1 --until 560 --task-seconds $T10 --config 'average|adam lr=0.003'"
  # 4-7: 8 and 16 clients
  "--clients 8 --until 200 --task-seconds $T2 --config 'average|adam lr=0.02 steps=2'"
  "--clients 16 --until 150 --task-seconds $T1 --config 'average|adam lr=0.02 steps=1'"
  "--clients 16 --until 150 --task-seconds $T2 --config 'average|adam lr=0.02 steps=2'"
  "--clients 8 --until 200 --task-seconds $T1 --config 'average|adam lr=0.02 steps=1'"
)
. bench/scaling_results/sim_jobs.sh
run_jobs "$@"
