#!/usr/bin/env bash
# side by side: old (HEAD) and new (working tree) servers both on core 0, generators on core 1
N=$1; ENC=${2:-f32}
ARGS="--server-cpus 0 --load-cpus 1 --params 1000000 --clients 30 --think 0 --warmup 6 --duration 25 --processes 1 --encoding $ENC"
(cd /tmp/s9/old && PYTHONPATH=/tmp/s9/old nice -n 10 /work/main/.venv/bin/python bench/load.py $ARGS --json /tmp/s9/ab_old_${ENC}_$N.json > /tmp/s9/ab_old_${ENC}_$N.log 2>&1) &
(cd /work/main && nice -n 10 .venv/bin/python bench/load.py $ARGS --json /tmp/s9/ab_new_${ENC}_$N.json > /tmp/s9/ab_new_${ENC}_$N.log 2>&1) &
wait
for w in old new; do python3 -c "
import json;d=json.load(open('/tmp/s9/ab_${w}_${ENC}_$N.json'));c=d['server']['cpu_mean_pct'];r=d['accepted_updates_per_s']
st=d['server'].get('final_status') or {}
print('$w', '$ENC', $N, round(d['merges_per_s'],1), round(c,1), round(c*10/r,2), 'errors', d['errors_total'], 'together', (st.get('capacity') or {}).get('mergesTogether'))"; done
