#!/usr/bin/env bash
# Issue 15's real-worker runs on the 16-core device, planned from the simulator on the frozen corpus
# (docs/scaling.md, "Plan for the device"): text workload on the bundled Tiny Shakespeare, target
# 0.35, 3 seeds, Node workers on the cpu backend, every server in bench/scaling.py's process on
# core 0, each run on cores of its own.
#   part 1 (one device call, about 5 min): 1 client (average, Adam 0.01, 10-step tasks) x 3 seeds
#          side by side on cores 1-6, beside 8 clients (fedbuff_live server_lr=0.5, Adam 0.028,
#          5-step tasks) x 3 seeds one after another on cores 7-15;
#   part 2 (one device call, about 6-8 min): 16 clients (fedbuff_live server_lr=0.5, Adam 0.04,
#          5-step tasks) x 3 seeds, then the same with speeds spread over 0.25-1 x 3 seeds, then,
#          while the call has time left, 16 clients with `average`, Adam 0.02 and 2-step tasks
#          x 3 seeds (the simulator's best at 16, whose real per-task overhead is the unknown);
#   report: the table and plot over the three JSON files, speedups against the 1-client runs;
#   part 3 (optional, a third call of about 6 min, beyond the 12 planned): the same 8 and 16
#          clients with the task values set by the server from the live clients (the spec's
#          one-client values, --lr-scaling sqrt --local-steps-exponent 0.25: 0.028 and 6 steps
#          at 8, 0.04 and 5 at 16 once all have joined); report3 adds them to the table.
# Runs end STOP seconds after their first validation at the target (--stop-after), or at their cap.
# Usage (needs the venv and client_js/node_modules, as for every bench/ script):
#   OUT=/some/dir bash bench/scaling_results/device_plan.sh 1|2|report|all|3|report3
#   (on the device machine $OUT is already set: `bash bench/scaling_results/device_plan.sh 1`,
#   timeout 600 s; then `... 2`; `report` can run there or here on the fetched JSON files)
# SCALE=small: 1, 2 and 3 clients, 1 seed, short caps and an easy target, unpinned: a smoke test
# of the same commands on a small machine (bench/scaling_results/device_plan_smoke_2026-12-01.txt).
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/scaling_plan}
mkdir -p "$OUT"
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
LIVE=webnn.merge.fedbuff_live:FedBuffLive
if [ "${SCALE:-}" = small ]; then
  SEEDS="1" MID=2 BIG=3 TARGET=0.14 STOP=2 CAP1=60 CAPMID=30 CAPBIG=30 CAPHET=30
  MASK1="" MASKMID="" PIN="" BUDGET1=200 BUDGET2=200 CALL=400
else
  SEEDS="1 2 3" MID=8 BIG=16 TARGET=0.35 STOP=3 CAP1=270 CAPMID=75 CAPBIG=60 CAPHET=90
  MASK1="taskset -c 0-6" MASKMID="taskset -c 0,7-15" PIN="--pin" BUDGET1=330 BUDGET2=400 CALL=${CALL:-570}
  if [ "$(nproc)" -lt 16 ]; then echo "device_plan: needs 16 cores, found $(nproc)" >&2; exit 2; fi
fi
S="$PY bench/scaling.py --workload text --target $TARGET --stop-after $STOP $PIN"
part1() {
  # one client: the best one-client setting (docs/scaling.md): average, Adam 0.01, 10-step tasks
  $MASK1 $S --clients 1 --seeds $SEEDS --setting "1=average lr=0.01" --cap-for 1=$CAP1 \
    --budget $BUDGET1 --out "$OUT/one" > "$OUT/one.log" 2>&1 &
  $MASKMID $S --clients $MID --seeds $SEEDS \
    --setting "$MID=$LIVE server_lr=0.5 lr=0.028 steps=5" --cap-for $MID=$CAPMID \
    --budget $BUDGET1 --out "$OUT/mid" > "$OUT/mid.log" 2>&1 &
  wait
  tail -n 20 "$OUT/one.log" "$OUT/mid.log"
}
part2() {
  $S --clients $BIG --hetero $BIG --seeds $SEEDS \
    --setting "$BIG=$LIVE server_lr=0.5 lr=0.04 steps=5" \
    --cap-for $BIG=$CAPBIG --cap-for ${BIG}het=$CAPHET --budget $BUDGET2 --out "$OUT/big" \
    > "$OUT/big.log" 2>&1
  tail -n 20 "$OUT/big.log"
  # the rest of the call (CALL seconds in all), runs that would start too late are skipped
  local left=$((CALL - SECONDS - CAPBIG - 15))
  if [ "$left" -gt 0 ]; then
    $S --clients $BIG --seeds $SEEDS --setting "$BIG=average lr=0.02 steps=2" \
      --cap-for $BIG=$CAPBIG --budget $left --out "$OUT/big2" > "$OUT/big2.log" 2>&1
    tail -n 12 "$OUT/big2.log"
  else
    echo "device_plan: no time left in this call for the 2-step runs"
  fi
}
part3() {
  $S --clients $MID $BIG --seeds $SEEDS \
    --setting "*=fedbuff_live server_lr=0.5 lr=0.01 steps=10 lr_scaling=sqrt local_steps_exponent=0.25" \
    --cap-for $MID=$CAPMID --cap-for $BIG=$CAPBIG --budget $BUDGET2 --out "$OUT/adaptive" \
    > "$OUT/adaptive.log" 2>&1
  tail -n 20 "$OUT/adaptive.log"
}
report3() {
  $PY bench/scaling.py --report-only --target $TARGET \
    --inputs "$OUT/one/scaling.json" "$OUT/adaptive/scaling.json" --out "$OUT/report3"
}
report() {
  $PY bench/scaling.py --report-only --target $TARGET \
    --inputs "$OUT/one/scaling.json" "$OUT/mid/scaling.json" "$OUT/big/scaling.json" \
    --out "$OUT/report"
  if [ -f "$OUT/big2/scaling.json" ]; then
    $PY bench/scaling.py --report-only --target $TARGET \
      --inputs "$OUT/one/scaling.json" "$OUT/big2/scaling.json" --out "$OUT/report2"
  fi
}
nproc; uptime; git rev-parse --short HEAD 2>/dev/null; node --version
case "${1:-all}" in
  1) part1 ;;
  2) part2 ;;
  report) report ;;
  all) part1; part2; report ;;
  3) part3 ;;
  report3) report3 ;;
  *) echo "usage: OUT=DIR bash $0 1|2|report|all|3|report3" >&2; exit 2 ;;
esac
uptime
