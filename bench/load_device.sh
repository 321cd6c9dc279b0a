#!/usr/bin/env bash
# The capacity rows of docs/capacity.md (issue 11) on a 16-core machine: bench/load.py runs two
# and three at a time, each server on its own core and its generator on its own cores.
# Usage: OUT=/some/dir COMMIT=<rev> bash bench/load_device.sh   (JSON reports and logs.txt in OUT)
# SCALE=small runs the same commands at toy sizes on two cores (a smoke test).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/cap11}; mkdir -p "$OUT"; LOG=/tmp/cap11logs; mkdir -p $LOG
L="python3 bench/load.py"
[ -x .venv/bin/python ] && L=".venv/bin/python bench/load.py"
L="$L --commit ${COMMIT:-unknown}"
if [ "${SCALE:-}" = small ]; then
  P1=20000 P10=50000 PK=5000 C=40 C100=8 W=2 D1=12 D2=8 STEP=4:2
  S0=0 G0=1 S1=0 G1=1 S2=0 G2=1 S3=1 G3=0
else
  P1=1000000 P10=10000000 PK=100000 C=1000 C100=100 W=15 D1=150 D2=45 STEP=30:5
  S0=0 G0=1-7 S1=8 G1=9-15 S2=0 G2=1-3 S3=4 G3=5-7
fi
nproc; uptime; python3 --version
# phase 1: 1M x 1000 with think time (core 0 | 1-7) beside 100k x 1000 (core 8 | 9-15)
$L --server-cpus $S0 --load-cpus $G0 --params $P1 --clients $C --think 0.5:1 --warmup $W \
   --duration $D1 --json $OUT/m1_c1000_think.json > $LOG/m1_c1000_think.log 2>&1 &
$L --server-cpus $S1 --load-cpus $G1 --params $PK --clients $C --think 0.5:1 --warmup $W \
   --duration $D1 --json $OUT/k100_c1000_think.json > $LOG/k100_c1000_think.log 2>&1 &
wait
# phase 2: 1M x 100 without think time, screening on (0 | 1-3) and off (4 | 5-7); 10M x 100 with
# think time and a load step to 5 clients (8 | 9-15)
$L --server-cpus $S2 --load-cpus $G2 --params $P1 --clients $C100 --think 0 --warmup 8 \
   --duration $D2 --json $OUT/m1_c100_nothink.json > $LOG/m1_c100_nothink.log 2>&1 &
$L --server-cpus $S3 --load-cpus $G3 --params $P1 --clients $C100 --think 0 --warmup 8 \
   --duration $D2 --screen off --json $OUT/m1_c100_nothink_noscreen.json \
   > $LOG/m1_c100_nothink_noscreen.log 2>&1 &
$L --server-cpus $S1 --load-cpus $G1 --params $P10 --clients $C100 --think 0.5:1 --warmup 10 \
   --duration $((D2 + 15)) --step $STEP --json $OUT/m10_c100_step.json \
   > $LOG/m10_c100_step.log 2>&1 &
wait
uptime
cd $LOG && tail -n 40 ./*.log > "$OUT/logs.txt"; tail -n 30 ./*.log
