#!/usr/bin/env bash
# Session 7, issue 15 with the calibrated simulator (same flags and device clock as sim_s6.sh: the
# benchmark's own text model, a validation seen 1.75 s after it starts): larger client batches at
# 8 and 16 clients (a step of 64 costs 1.804 steps of 32, bench/step_time.mjs, so a task of L steps
# of 64 takes 0.055 + 0.274 L s), and client-rate warm-up (webnn's `lr_warmup` with
# `lr_scaling=sqrt`; the simulator's `warmup=T` ramps from lr/sqrt(N) to lr over T s).
#   JOBS=1 bash bench/scaling_results/sim_s7.sh OUTFILE [JOB NUMBERS...]
set -u
cd "$(dirname "$0")/../.."
out=${1:-sim_s7.txt}
shift || true
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
LIVE=webnn.merge.fedbuff_live:FedBuffLive
common="--data text --model embed --hidden 256 --seeds 1 2 3 --target 0.99 --eval-seconds 1.75 --max-updates 1000000 --milestones 0.3 0.32 0.33 0.34 0.345 0.35 0.36"
T2=0.359 T2B64=0.603 T1B64=0.329 T3B64=0.877 T10B64=2.80 T10=1.579
T10B128=5.23  # 0.055 + 10 c(128), c(128) = 3.4 c(32) (bench/step_time.mjs, sim_s7 result text)
jobs=(
  # 1-2: 16 clients, batch 64 (1024 examples a round)
  "--clients 16 --until 120 --task-seconds $T2B64 --config 'average|adam lr=0.04 batch=64 steps=2'"
  "--clients 16 --until 120 --task-seconds $T2B64 --config '$LIVE server_lr=0.5|adam lr=0.08 batch=64 steps=2 warmup=20'"
  # 3-4: 8 clients, batch 64
  "--clients 8 --until 150 --task-seconds $T2B64 --config 'average|adam lr=0.03 batch=64 steps=2'"
  "--clients 8 --until 150 --task-seconds $T2B64 --config '$LIVE server_lr=0.5|adam lr=0.056 batch=64 steps=2 warmup=20'"
  # 5-7: batch 32 with a warmed-up client rate
  "--clients 16 --until 120 --task-seconds $T2 --config 'average|adam lr=0.06 steps=2 warmup=20'"
  "--clients 8 --until 150 --task-seconds $T2 --config 'average|adam lr=0.045 steps=2 warmup=20'"
  "--clients 16 --until 120 --task-seconds $T2 --config '$LIVE server_lr=0.5|adam lr=0.12 steps=2 warmup=30'"
  # 8: 16 clients, batch 64, 1-step tasks
  "--clients 16 --until 120 --task-seconds $T1B64 --config 'average|adam lr=0.04 batch=64 steps=1'"
  # 9: one client, batch 128 (is the one-client baseline still best at 64?)
  "--clients 1 --until 560 --task-seconds $T10B128 --config 'average|adam lr=0.02 batch=128'"
  # 10-14: batch 64, rates and task lengths around the best of 1-8
  "--clients 8 --until 150 --task-seconds $T2B64 --config 'average|adam lr=0.04 batch=64 steps=2'"
  "--clients 8 --until 150 --task-seconds $T2B64 --config 'average|adam lr=0.02 batch=64 steps=2'"
  "--clients 8 --until 150 --task-seconds $T1B64 --config 'average|adam lr=0.03 batch=64 steps=1'"
  "--clients 8 --until 150 --task-seconds $T3B64 --config 'average|adam lr=0.03 batch=64 steps=3'"
  "--clients 16 --until 120 --task-seconds $T2B64 --config 'average|adam lr=0.03 batch=64 steps=2'"
  # 15-16: one client, batch 64, other rates (0.014: sim_s6b, 349 s to 0.35)
  "--clients 1 --until 560 --task-seconds $T10B64 --config 'average|adam lr=0.02 batch=64'"
  "--clients 1 --until 560 --task-seconds $T10B64 --config 'average|adam lr=0.01 batch=64'"
  # 17-18: the synchronous large-batch ideal of 16 x 64: one client, batch 1024, on the clock of a
  # 10-step batch-32 task (times compare steps with sim_s6.sh's batch 256 and 512)
  "--clients 1 --until 200 --task-seconds $T10 --config 'average|adam lr=0.056 batch=1024'"
  "--clients 1 --until 200 --task-seconds $T10 --config 'average|adam lr=0.08 batch=1024'"
  # 19: the best 16-client setting with speeds spread over 0.25-1
  "--clients 16 --spread 4 --until 150 --task-seconds $T1B64 --config 'average|adam lr=0.04 batch=64 steps=1'"
  # 20: 8 clients, batch 64, 3-step tasks, another rate
  "--clients 8 --until 150 --task-seconds $T3B64 --config 'average|adam lr=0.04 batch=64 steps=3'"
  # 21-22: fedbuff_live (server_lr 0.5) at batch 64, the sqrt rule's client rate, no warm-up
  "--clients 16 --until 120 --task-seconds $T1B64 --config '$LIVE server_lr=0.5|adam lr=0.056 batch=64 steps=1'"
  "--clients 8 --until 150 --task-seconds $T2B64 --config '$LIVE server_lr=0.5|adam lr=0.04 batch=64 steps=2'"
  # 23-25: the synchronous ideal's rate (sim_s6: batch 512 at 0.02 / 0.04 / 0.08; here 0.056 and
  # 0.028; batch 1024 at 0.04)
  "--clients 1 --until 200 --task-seconds $T10 --config 'average|adam lr=0.056 batch=512'"
  "--clients 1 --until 200 --task-seconds $T10 --config 'average|adam lr=0.028 batch=512'"
  "--clients 1 --until 200 --task-seconds $T10 --config 'average|adam lr=0.04 batch=1024'"
)
. bench/scaling_results/sim_jobs.sh
run_jobs "$@"
