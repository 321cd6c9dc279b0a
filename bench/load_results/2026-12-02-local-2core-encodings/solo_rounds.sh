#!/usr/bin/env bash
# Each encoding alone (one server on core 0, its generator on core 1, nice -n 10), alternating
# f32, q8f16 per round: merges/s when a server has core 0 to itself (others' jobs aside).
# Usage: solo_rounds.sh 1 2; writes solo_f32_N.json, solo_q8f16_N.json.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
ARGS="--server-cpus 0 --load-cpus 1 --params 1000000 --clients 30 --think 0 --warmup 6 --duration 25 --processes 1"
for n in "$@"; do
  for enc in f32 q8f16; do
    nice -n 10 .venv/bin/python bench/load.py $ARGS --encoding $enc --json "$HERE/solo_${enc}_$n.json" > "$HERE/solo_${enc}_$n.log" 2>&1
  done
done
for f in "$HERE"/solo_*.json; do
  .venv/bin/python -c "
import json, sys; r = json.load(open(sys.argv[1])); cpu, rate = r['server']['cpu_mean_pct'], r['accepted_updates_per_s']
print(f\"{sys.argv[1].rsplit('/', 1)[1]:22s} merges/s {r['merges_per_s']:6.1f} cpu {cpu:5.1f} % ms/upd {cpu * 10 / rate:6.2f} errors {r['errors_total']} 503 {r['busy_503_total']}\")" "$f"
done | tee "$HERE/solo_summary.txt"
