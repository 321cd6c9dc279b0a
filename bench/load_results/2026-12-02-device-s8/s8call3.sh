#!/usr/bin/env bash
# Session 8, device call 3: issue 11's targets again with this session's server (the answer budget
# at its default, small models merged inline): M 1M x 1000 think (5-minute window), T 10M x 100
# think, N 1M x 100 without think (f32), S stalled weight fetches with and without the budget
# (Python 3.12).
set -u
C=$(git rev-parse --short HEAD 2>/dev/null || cat .devkit/s8commit)
ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || true; ulimit -n
nproc; uptime; python3 --version
L="python3 bench/load.py --commit $C"
W=/tmp/s8c3; mkdir -p $W  # logs and census here, tarred into $OUT (at most 8 files come back)
$L --server-cpus 0 --load-cpus 1-5 --params 1000000 --clients 1000 --think 0.5:1 --warmup 120 --duration 300 --census $W/M_census.jsonl --census-every 60 --json $OUT/M_m1_c1000_think.json > $W/M.log 2>&1 &
M=$!
$L --server-cpus 6 --load-cpus 7-9 --params 10000000 --clients 100 --think 0.5:1 --warmup 30 --duration 180 --json $OUT/T_m10_c100_think.json > $W/T.log 2>&1 &
T=$!
$L --server-cpus 10 --load-cpus 11-13 --params 1000000 --clients 100 --think 0 --warmup 8 --duration 45 --json $OUT/N_m1_c100_nothink.json > $W/N.log 2>&1
taskset -c 14-15 python3 bench/stalled_answers.py --server-cpus 10 --params 1000000 --connections 400 --json > $OUT/S_stalled_1m.json 2> $W/S.log
wait $M $T
uptime
tar czf $OUT/logs.tgz -C $W .
tail -n 12 $W/M.log $W/T.log $W/N.log; cat $OUT/S_stalled_1m.json | head -c 3000
