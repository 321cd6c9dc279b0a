#!/bin/bash
ARGS="--server-cpus 0 --load-cpus 1 --params 1000000 --clients 30 --think 0 --warmup 6 --duration 25 --processes 1 --encoding q8f16"
for i in 1 2 3 4; do
  (cd /tmp/s8hc_old && PYTHONPATH=/tmp/s8hc_old nice -n 10 /work/main/.venv/bin/python bench/load.py $ARGS --json /tmp/s8hc/old_$i.json > /tmp/s8hc/old_$i.log 2>&1) &
  A=$!
  (cd /work/main && nice -n 10 .venv/bin/python bench/load.py $ARGS --json /tmp/s8hc/new_$i.json > /tmp/s8hc/new_$i.log 2>&1) &
  B=$!
  wait $A $B
done
echo done
