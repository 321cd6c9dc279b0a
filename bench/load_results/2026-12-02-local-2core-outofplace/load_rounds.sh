#!/bin/bash
# side by side: before (/tmp/h1_old = git archive c0541f7) and after (/tmp/h1_new = git archive ff9e79b + staged kernel)
OUT=/work/main/bench/load_results/2026-12-02-local-2core-outofplace
ARGS="--server-cpus 0 --load-cpus 1 --params 1000000 --clients 30 --think 0 --warmup 6 --duration 25 --processes 1"
for N in "$@"; do
  (cd /tmp/h1_old && PYTHONPATH=/tmp/h1_old nice -n 10 /work/main/.venv/bin/python bench/load.py $ARGS --json $OUT/old_$N.json > /tmp/h1_bench/old_$N.log 2>&1) &
  (cd /tmp/h1_new && PYTHONPATH=/tmp/h1_new nice -n 10 /work/main/.venv/bin/python bench/load.py $ARGS --json $OUT/new_$N.json > /tmp/h1_bench/new_$N.log 2>&1) &
  wait
done
