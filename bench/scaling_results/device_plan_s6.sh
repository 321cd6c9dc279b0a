#!/usr/bin/env bash
# Issue 15's real-worker runs for session 6 on the 16-core device, planned with the calibrated
# simulator (bench/scaling_sim.py --model embed, which matches the session-5 device runs within the
# seed spread: sim_calibrate_2026-12-01.txt; predictions: sim_s6_2026-12-01.txt). Text workload on
# the bundled Tiny Shakespeare, TARGET 0.35 (one client needs about 380 s to it, simulated; session
# 5's 270 s cap was too short for it), 3 seeds, Node workers on the cpu backend, every server in
# bench/scaling.py's process on core 0, each run on cores of its own. Three calls, each at most
# 560 s (CALL), each packing everything it wrote into at most 3 files under $OUT (the device returns
# at most 8 files, no deeper than $OUT/a/b/file; session 5 lost a JSON to that limit):
#   $OUT/callN.tar.gz  every scaling.json / scaling.md / plot / worker log of the call (WORK/callN)
#   $OUT/callN.log     the consoles of bench/scaling.py (one line per run, the tables)
#   $OUT/callN.md      the tables alone
# Calls:
#   1: 1 client (average, Adam 0.01, 10-step tasks: the best one-client setting bench/scaling.py
#      can set, sim_s6b) x 3 seeds side by side on cores 1-6, cap CAP1 (500 s; simulated seeds
#      375-410 s), beside 8 clients (average, Adam 0.03, 2-step tasks) x 3 seeds one after another
#      on cores 7-15, cap 120 s (simulated median 84 s);
#   2: 16 clients (average, Adam 0.03, 2-step tasks) x 3 seeds, cap 90 s (simulated about 63 s),
#      then the same with speeds spread over 0.25-1, cap 120 s (simulated 87.5 s);
#   3: 16 clients (fedbuff_live server_lr=0.5, Adam 0.04, 2-step tasks) x 3 seeds, cap 90 s
#      (simulated 72 s), then 8 clients (average, Adam 0.02, 2-step tasks: session 5's setting) x 3
#      seeds, cap 120 s (simulated 93 s).
#   report: unpacks $OUT/call*.tar.gz (here or there) and prints the tables at 0.34, 0.35 and 0.36
#      with speedups against the call-1 one-client runs (REPORT=DIR for the report files).
# Runs end STOP seconds after their first validation at the target (--stop-after), or at their cap;
# --budget skips runs that would start too late, and `timeout` stops a part that would outrun the
# call (its finished runs are already saved), so packing always happens.
# Usage (needs the venv and client_js/node_modules, as for every bench/ script):
#   OUT=/some/dir bash bench/scaling_results/device_plan_s6.sh 1|2|3|report
#   (on the device $OUT is set: `bash bench/scaling_results/device_plan_s6.sh 1`, timeout 600 s)
# SCALE=small: 1-3 clients, 1 seed, short caps, an easy target, unpinned: a smoke test of the same
# commands on a small machine (bench/scaling_results/device_plan_s6_smoke_2026-12-01.txt).
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/scaling_s6}
WORK=${WORK:-/tmp/scaling_s6_work}
mkdir -p "$OUT" "$WORK"
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
LIVE=webnn.merge.fedbuff_live:FedBuffLive
if [ "${SCALE:-}" = small ]; then
  SEEDS="1" MID=2 BIG=3 TARGET=0.14 STOP=2 CAP1=60 CAPMID=30 CAPBIG=30 CAPHET=30
  MASK1="" MASKMID="" PIN="" CALL=${CALL:-300}
else
  SEEDS="1 2 3" MID=8 BIG=16 TARGET=0.35 STOP=3 CAP1=500 CAPMID=120 CAPBIG=90 CAPHET=120
  MASK1="taskset -c 0-6" MASKMID="taskset -c 0,7-15" PIN="--pin" CALL=${CALL:-560}
  if [ "$(nproc)" -lt 16 ]; then echo "device_plan_s6: needs 16 cores, found $(nproc)" >&2; exit 2; fi
fi
S="$PY bench/scaling.py --workload text --target $TARGET --stop-after $STOP $PIN"
left() { echo $((CALL - SECONDS - ${1:-0})); }  # seconds of the call left, less a reserve

# pack NAME: everything under WORK/NAME into OUT/NAME.tar.gz, its consoles into OUT/NAME.log and
# their tables into OUT/NAME.md (three files: well inside the device's eight).
pack() {
  local dir="$WORK/$1"
  tar czf "$OUT/$1.tar.gz" -C "$WORK" "$1"
  cat "$dir"/*.log > "$OUT/$1.log" 2>/dev/null
  grep -h '^|\|^Measured' "$dir"/*.log > "$OUT/$1.md" 2>/dev/null
  ls -la "$OUT"
}

part1() {
  local dir="$WORK/call1" stop
  mkdir -p "$dir"
  stop=$(left 25)
  # one client: the best one-client setting bench/scaling.py can set (sim_s6b): average, Adam 0.01,
  # 10-step tasks (20-step tasks tie; batch 64, which a --setting cannot set, is 8 % faster there)
  timeout -k 10 "$stop" $MASK1 $S --clients 1 --seeds $SEEDS --setting "1=average lr=0.01" \
    --cap-for 1=$CAP1 --budget $((stop - CAP1 - 5)) --out "$dir/one" > "$dir/one.log" 2>&1 &
  timeout -k 10 "$stop" $MASKMID $S --clients $MID --seeds $SEEDS \
    --setting "$MID=average lr=0.03 steps=2" --cap-for $MID=$CAPMID \
    --budget $((stop - CAPMID - 10)) --out "$dir/mid" > "$dir/mid.log" 2>&1 &
  wait
  tail -n 12 "$dir/one.log" "$dir/mid.log"
  pack call1
}

part2() {
  local dir="$WORK/call2" stop
  mkdir -p "$dir"
  stop=$(left 25)
  timeout -k 10 "$stop" $S --clients $BIG --hetero $BIG --seeds $SEEDS \
    --setting "$BIG=average lr=0.03 steps=2" --cap-for $BIG=$CAPBIG --cap-for ${BIG}het=$CAPHET \
    --budget $((stop - CAPHET - 10)) --out "$dir/big" > "$dir/big.log" 2>&1
  tail -n 14 "$dir/big.log"
  pack call2
}

part3() {
  local dir="$WORK/call3" stop
  mkdir -p "$dir"
  stop=$(left 25)
  timeout -k 10 "$stop" $S --clients $BIG --seeds $SEEDS \
    --setting "$BIG=$LIVE server_lr=0.5 lr=0.04 steps=2" --cap-for $BIG=$CAPBIG \
    --budget $((stop - CAPBIG - 10 - 3 * (CAPMID + 10))) --out "$dir/big2" > "$dir/big2.log" 2>&1
  tail -n 8 "$dir/big2.log"
  stop=$(left 25)
  if [ "$stop" -gt $((CAPMID + 20)) ]; then
    timeout -k 10 "$stop" $S --clients $MID --seeds $SEEDS \
      --setting "$MID=average lr=0.02 steps=2" --cap-for $MID=$CAPMID \
      --budget $((stop - CAPMID - 10)) --out "$dir/mid2" > "$dir/mid2.log" 2>&1
    tail -n 8 "$dir/mid2.log"
  else
    echo "device_plan_s6: no time left in call 3 for the second 8-client setting"
  fi
  pack call3
}

report() {
  local into=${REPORT:-$WORK/report} call one target
  mkdir -p "$into"
  for call in call1 call2 call3; do
    [ -f "$OUT/$call.tar.gz" ] && tar xzf "$OUT/$call.tar.gz" -C "$WORK"
  done
  one="$WORK/call1/one/scaling.json"
  for target in 0.34 $TARGET 0.36; do
    for other in call1/mid call2/big call3/big2 call3/mid2; do
      [ -f "$WORK/$other/scaling.json" ] || continue
      echo "## target $target: $other"
      $PY bench/scaling.py --report-only --target "$target" --at 60 \
        --inputs "$one" "$WORK/$other/scaling.json" --out "$into/${other//\//_}_$target"
    done
  done
}

nproc; uptime; git rev-parse --short HEAD 2>/dev/null; node --version
case "${1:-}" in
  1) part1 ;;
  2) part2 ;;
  3) part3 ;;
  report) report ;;
  *) echo "usage: OUT=DIR bash $0 1|2|3|report" >&2; exit 2 ;;
esac
uptime
