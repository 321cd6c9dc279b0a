#!/bin/bash
BASE="--server-cpus 0 --load-cpus 1 --params 1000000 --clients 30 --think 0 --warmup 6 --duration 25 --processes 1 --encoding q8f16"
cd /work/main
for i in 1 2 3 4; do
  nice -n 10 .venv/bin/python bench/load.py $BASE --json /tmp/s8q8/q8f16_$i.json > /tmp/s8q8/q8f16_$i.log 2>&1 &
  A=$!
  nice -n 10 .venv/bin/python bench/load.py $BASE --server-arg=--weights-encoding=f32 --json /tmp/s8q8/q8w32b_$i.json > /tmp/s8q8/q8w32b_$i.log 2>&1 &
  B=$!
  wait $A $B
done
