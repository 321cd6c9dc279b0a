#!/usr/bin/env bash
# Issue 15 with the calibrated simulator (--model embed: the benchmark's own text model; device task
# times; one validation seen 1.75 s after it starts, as on the device; sim_calibrate_2026-12-01.txt):
# the one-client baseline to 560 s, the synchronous large-batch ideal, and 8 and 16 clients.
# A task of L local steps of 32 takes 0.055 + 0.152 L seconds (fit to the device: 1.579 s at 10
# steps, 0.842 at 5, 0.348-0.374 at 2); --task-seconds in each job.
#   JOBS=1 bash bench/scaling_results/sim_s6.sh OUTFILE [JOB NUMBERS...]
set -u
cd "$(dirname "$0")/../.."
out=${1:-sim_s6.txt}
shift || true
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
LIVE=webnn.merge.fedbuff_live:FedBuffLive
common="--data text --model embed --hidden 256 --seeds 1 2 3 --target 0.99 --eval-seconds 1.75 --max-updates 1000000 --milestones 0.3 0.32 0.33 0.34 0.345 0.35 0.36"
T1=0.207 T2=0.359 T5=0.815 T10=1.579
jobs=(
  # 1-4: the synchronous large-batch ideal: one client, batch 16 x 32 / 8 x 32, a 10-step task on
  # the clock of a 10-step batch-32 task (so times compare steps with the one-client baseline)
  "--clients 1 --until 200 --task-seconds $T10 --config 'average|adam lr=0.02 batch=512'"
  "--clients 1 --until 200 --task-seconds $T10 --config 'average|adam lr=0.04 batch=512'"
  "--clients 1 --until 200 --task-seconds $T10 --config 'average|adam lr=0.02 batch=256'"
  "--clients 1 --until 200 --task-seconds $T10 --config 'average|adam lr=0.028 batch=256'"
  # 5-11: 16 clients
  "--clients 16 --until 120 --task-seconds $T2 --config 'average|adam lr=0.02 steps=2'"
  "--clients 16 --until 120 --task-seconds $T2 --config 'average|adam lr=0.03 steps=2'"
  "--clients 16 --until 120 --task-seconds $T1 --config 'average|adam lr=0.02 steps=1'"
  "--clients 16 --until 120 --task-seconds $T5 --config '$LIVE server_lr=0.5|adam lr=0.04 steps=5'"
  "--clients 16 --until 120 --task-seconds $T2 --config '$LIVE server_lr=0.5|adam lr=0.04 steps=2'"
  "--clients 16 --until 120 --task-seconds $T1 --config '$LIVE server_optimizer=adam tau=1e-7 server_lr=0.01|sgd lr=1 steps=1'"
  "--clients 16 --until 120 --task-seconds $T2 --config '$LIVE server_lr=0.5|adam lr=0.08 steps=2 warmup=20'"
  # 12-14: 8 clients
  "--clients 8 --until 150 --task-seconds $T2 --config 'average|adam lr=0.02 steps=2'"
  "--clients 8 --until 150 --task-seconds $T2 --config '$LIVE server_lr=0.5|adam lr=0.028 steps=2'"
  "--clients 8 --until 150 --task-seconds $T1 --config '$LIVE server_optimizer=adam tau=1e-7 server_lr=0.01|sgd lr=1 steps=1'"
)
. bench/scaling_results/sim_jobs.sh
run_jobs "$@"
