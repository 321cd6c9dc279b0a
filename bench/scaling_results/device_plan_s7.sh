#!/usr/bin/env bash
# Issue 15's real-worker runs for session 7 on the 16-core device: the calibrated simulator's best
# settings with a per-client batch of 64 (bench/scaling_results/sim_s7.sh, result text
# sim_s7_2026-12-02.txt), against the best one-client setting, which is batch 64 too (Adam 0.014;
# simulated 349 s to 0.35 against 378 s at batch 32, which session 6 measured at 368.9 s). Text
# workload on the bundled Tiny Shakespeare, TARGET 0.35, 3 seeds, Node workers on the cpu backend,
# every server in bench/scaling.py's process on core 0, each run on cores of its own. Three calls,
# each at most 560 s (CALL), each packing everything it wrote into 3 files under $OUT (the device
# returns at most 8 files):
#   $OUT/callN.tar.gz  every scaling.json / scaling.md / plot / worker log of the call (WORK/callN)
#   $OUT/callN.log     the consoles of bench/scaling.py (one line per run, the tables)
#   $OUT/callN.md      the tables alone
# Calls (simulated medians to 0.35, sim_s7_2026-12-02.txt):
#   1: 1 client (ONE: average, Adam 0.014, batch 64, 10-step tasks) x 3 seeds side by side on
#      cores 1-6, cap CAP1 500 s (simulated seeds 316, 349, 369 s), beside 8 clients (MID: average,
#      Adam 0.03, batch 64, 3-step tasks) x 3 seeds one after another on cores 7-15, cap 120 s
#      (simulated 77 s: 4.5x);
#   2: 16 clients (BIG: average, Adam 0.04, batch 64, 1-step tasks) x 3 seeds, cap 90 s (simulated
#      59.5 s: 5.9x), then 8 clients (MID2: average, Adam 0.03, batch 64, 2-step tasks; simulated
#      78.8 s) while time is left;
#   3: the BIG setting with speeds spread over 0.25-1 (16het) x 3 seeds, cap 130 s.
#   report: unpacks $OUT/call*.tar.gz (here or there) and prints the tables at 0.34, 0.35 and 0.36
#      against the call-1 one-client runs and, where present, session 6's batch-32 one-client runs
#      (bench/scaling_results/device_s6/text_1client_average.json: 368.9 s to 0.35).
# Runs end STOP seconds after their first validation at the target (--stop-after), or at their cap;
# --budget skips runs that would start too late, and `timeout` stops a part that would outrun the
# call (its finished runs are already saved), so packing always happens.
# Usage (needs the venv and client_js/node_modules, as for every bench/ script):
#   OUT=/some/dir bash bench/scaling_results/device_plan_s7.sh 1|2|3|report
#   (on the device $OUT is set: `bash bench/scaling_results/device_plan_s7.sh 1`, timeout 600 s)
# SCALE=small: 1-3 clients, 1 seed, short caps, an easy target, unpinned: a smoke test of the same
# commands on a small machine (bench/scaling_results/device_plan_s7_smoke_2026-12-02.txt).
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/scaling_s7}
WORK=${WORK:-/tmp/scaling_s7_work}
mkdir -p "$OUT" "$WORK"
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
ONE="average lr=0.014 batch=64"
MID_SET="average lr=0.03 batch=64 steps=3"
MID2_SET="average lr=0.03 batch=64 steps=2"
BIG_SET="average lr=0.04 batch=64 steps=1"
if [ "${SCALE:-}" = small ]; then
  SEEDS="1" MID=2 BIG=3 TARGET=0.14 STOP=2 CAP1=60 CAPMID=30 CAPBIG=30 CAPHET=30
  MASK1="" MASKMID="" PIN="" CALL=${CALL:-300}
else
  SEEDS="1 2 3" MID=8 BIG=16 TARGET=0.35 STOP=3 CAP1=500 CAPMID=120 CAPBIG=90 CAPHET=130
  MASK1="taskset -c 0-6" MASKMID="taskset -c 0,7-15" PIN="--pin" CALL=${CALL:-560}
  if [ "${1:-}" != report ] && [ "$(nproc)" -lt 16 ]; then  # the report only reads results
    echo "device_plan_s7: needs 16 cores, found $(nproc)" >&2; exit 2
  fi
fi
PLAN=device_plan_s7 WORKLOAD=text
LEVELS="0.34 $TARGET 0.36"
BASES=bench/scaling_results/device_s6/text_1client_average.json  # session 6's batch-32 one client
# shellcheck source=device_plan_runs.sh
source bench/scaling_results/device_plan_runs.sh "$@"
