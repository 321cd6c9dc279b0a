#!/usr/bin/env bash
# Session 7, device call 1: K10 (100k x 1000, think, 10-minute window) detached so it outlives this
# call (collected by s7call2.sh), and M2 / M2n (1M x 1000 think, allocator pinned vs --no-pin-malloc).
set -u
C=$(git rev-parse --short HEAD 2>/dev/null || echo c0541f7)
ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || true; ulimit -n
nproc; uptime
mkdir -p /tmp/k10
setsid nohup bash -c "ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null; cd $PWD && PYTHONPATH=$PWD python3 bench/load.py --commit $C --server-cpus 11 --load-cpus 12-15 --params 100000 --clients 1000 --think 0.5:1 --warmup 20 --duration 600 --census /tmp/k10/K10_census.jsonl --census-every 60 --json /tmp/k10/K10_k100_c1000_think_10min.json > /tmp/k10/K10.log 2>&1; echo done > /tmp/k10/DONE" > /dev/null 2>&1 < /dev/null &
python3 bench/load.py --commit $C --server-cpus 0 --load-cpus 1-5 --params 1000000 --clients 1000 --think 0.5:1 --warmup 150 --duration 300 --census $OUT/M2_census.jsonl --census-every 60 --json $OUT/M2_m1_c1000_think.json > $OUT/M2.log 2>&1 &
python3 bench/load.py --commit $C --server-cpus 6 --load-cpus 7-10 --params 1000000 --clients 1000 --think 0.5:1 --warmup 150 --duration 300 --server-arg=--no-pin-malloc --census $OUT/M2n_census.jsonl --census-every 60 --json $OUT/M2n_m1_c1000_think_nopin.json > $OUT/M2n.log 2>&1 &
wait
uptime; tail -n 20 $OUT/M2.log $OUT/M2n.log; echo ---K10 so far; tail -n 5 /tmp/k10/K10.log
