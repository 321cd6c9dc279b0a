#!/usr/bin/env bash
# Session 7, device call 3: where 1M no-think updates' server CPU goes on the device.
# Four servers at once: X 1M x100 (perf + per-thread CPU), Y 1M x100 --no-follow-up,
# Z 100k x100, W 4M x50, all --think 0, 8 s warm-up, 50 s window.
set -u
C=$(git rev-parse --short HEAD 2>/dev/null || echo c0541f7)
L="python3 bench/load.py --commit $C --think 0 --warmup 8 --duration 50"
J=$OUT; nproc; uptime; perf --version || echo "no perf"
cat /proc/sys/kernel/perf_event_paranoid
$L --server-cpus 0 --load-cpus 1-3 --params 1000000 --clients 100 --json $J/X_m1_c100.json > $J/X.log 2>&1 &
$L --server-cpus 4 --load-cpus 5-7 --params 1000000 --clients 100 --no-follow-up --json $J/Y_m1_c100_nofollow.json > $J/Y.log 2>&1 &
$L --server-cpus 8 --load-cpus 9-11 --params 100000 --clients 100 --json $J/Z_k100_c100.json > $J/Z.log 2>&1 &
$L --server-cpus 12 --load-cpus 13-15 --params 4000000 --clients 50 --json $J/W_m4_c50.json > $J/W.log 2>&1 &
sleep 25
SP=""
for p in $(pgrep -f "serve"); do a=$(taskset -pc $p 2>/dev/null | awk '{print $NF}'); [ "$a" = "0" ] && SP=$p; done
echo "server X pid $SP"; ps -L -o tid,comm,pcpu -p $SP | head -20
snap() { for t in /proc/$SP/task/*; do echo "$(basename $t) $(cat $t/comm) $(awk '{print $14+$15}' $t/stat)"; done; }
snap > /tmp/t0
perf record -F 999 -g -p $SP -o /tmp/perf.data -- sleep 15 > /tmp/perf.rec.log 2>&1 || echo "perf record failed"
snap > /tmp/t1
join <(sort /tmp/t0) <(sort /tmp/t1) | awk '{printf "%s %s %.1f%%\n", $1, $2, ($5-$3)}' | sort -k3 -n -r | head -12
wait
perf report -i /tmp/perf.data --no-children --sort tid,dso,sym --stdio 2>/dev/null | grep -v "^$" | grep "%" | head -120 > $OUT/perf_X.txt
perf report -i /tmp/perf.data --no-children --sort tid --stdio 2>/dev/null | grep "%" | head -20 >> $OUT/perf_X.txt
perf report -i /tmp/perf.data --no-children --sort dso --stdio 2>/dev/null | grep "%" | head -20 >> $OUT/perf_X.txt
cat /tmp/perf.rec.log | tail -3
uptime
for f in X Y Z W; do echo "== $f"; sed -n 1,12p $J/$f.log; grep "^update\|^task" $J/$f.log; done
python3 - "$J" <<'PY'
import json, pathlib, sys
for p in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    r = json.loads(p.read_text()); cpu = r["server"]["cpu_mean_pct"]; rate = r["accepted_updates_per_s"]
    print(f"{p.stem:24s} merges/s {r['merges_per_s']:7.1f} cpu {cpu:5.1f} ms/upd {cpu*10/rate if rate else 0:6.2f} errors {r['errors_total']} 503 {r['busy_503_total']}")
PY
cd $J && tar czf runs.tar.gz *.json *.log && rm -f *.json *.log
