# The calls of a device plan for bench/scaling.py (sourced by device_plan_s7.sh and
# device_plan_s8.sh, which set the workload and its settings; see their headers for what each
# call runs). Expects: PLAN (a name for messages), PY, OUT, WORK, WORKLOAD, TARGET, STOP, PIN,
# CALL, SEEDS, MID, BIG, ONE, MID_SET, MID2_SET, BIG_SET, CAP1, CAPMID, CAPBIG, CAPHET, MASK1,
# MASKMID, LEVELS (the report's targets) and BASES (the report's one-client references besides
# this plan's own call-1 runs; may be empty). Takes the call (1|2|3|report) as its argument.

S="$PY bench/scaling.py --workload $WORKLOAD --target $TARGET --stop-after $STOP $PIN"
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

part1() {  # one client (ONE) side by side over the seeds, beside MID clients seed after seed
  local dir="$WORK/call1" stop
  mkdir -p "$dir"
  stop=$(left 25)
  timeout -k 10 "$stop" $MASK1 $S --clients 1 --seeds $SEEDS --setting "1=$ONE" \
    --cap-for 1=$CAP1 --budget $((stop - CAP1 - 5)) --out "$dir/one" > "$dir/one.log" 2>&1 &
  timeout -k 10 "$stop" $MASKMID $S --clients $MID --seeds $SEEDS \
    --setting "$MID=$MID_SET" --cap-for $MID=$CAPMID \
    --budget $((stop - CAPMID - 10)) --out "$dir/mid" > "$dir/mid.log" 2>&1 &
  wait
  tail -n 12 "$dir/one.log" "$dir/mid.log"
  pack call1
}

part2() {  # BIG clients, then MID clients at MID2_SET while the call has time
  local dir="$WORK/call2" stop
  mkdir -p "$dir"
  stop=$(left 25)
  timeout -k 10 "$stop" $S --clients $BIG --seeds $SEEDS \
    --setting "$BIG=$BIG_SET" --cap-for $BIG=$CAPBIG \
    --budget $((stop - CAPBIG - 10)) --out "$dir/big" > "$dir/big.log" 2>&1
  tail -n 8 "$dir/big.log"
  stop=$(left 25)
  if [ "$stop" -gt $((CAPMID + 20)) ]; then
    timeout -k 10 "$stop" $MASKMID $S --clients $MID --seeds $SEEDS \
      --setting "$MID=$MID2_SET" --cap-for $MID=$CAPMID \
      --budget $((stop - CAPMID - 10)) --out "$dir/mid2" > "$dir/mid2.log" 2>&1
    tail -n 8 "$dir/mid2.log"
  else
    echo "$PLAN: no time left in call 2 for the second $MID-client setting"
  fi
  pack call2
}

part3() {  # the BIG setting with speeds spread over 0.25-1
  local dir="$WORK/call3" stop
  mkdir -p "$dir"
  stop=$(left 25)
  timeout -k 10 "$stop" $S --clients --hetero $BIG --seeds $SEEDS \
    --setting "$BIG=$BIG_SET" --cap-for ${BIG}het=$CAPHET \
    --budget $((stop - CAPHET - 10)) --out "$dir/het" > "$dir/het.log" 2>&1
  tail -n 8 "$dir/het.log"
  pack call3
}

report() {  # unpack OUT's calls; tables at each of LEVELS against each one-client reference
  local into=${REPORT:-$WORK/report} call target base other
  mkdir -p "$into"
  for call in call1 call2 call3; do
    [ -f "$OUT/$call.tar.gz" ] && tar xzf "$OUT/$call.tar.gz" -C "$WORK"
  done
  [ -f "$WORK/call1/one/scaling.json" ] || echo "$PLAN: no one-client runs of its own" >&2
  for target in $LEVELS; do
    for base in "$WORK/call1/one/scaling.json" $BASES; do
      [ -f "$base" ] || continue
      for other in call1/mid call2/big call2/mid2 call3/het; do
        [ -f "$WORK/$other/scaling.json" ] || continue
        echo "## target $target: $other against $base"
        $PY bench/scaling.py --report-only --target "$target" --at 60 \
          --inputs "$base" "$WORK/$other/scaling.json" --out "$into/${other//\//_}_$target"
      done
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
