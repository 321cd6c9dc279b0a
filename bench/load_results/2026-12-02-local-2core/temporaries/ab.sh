#!/bin/bash
# usage: ab.sh TAG STRACE(0/1) load.py args...
TAG=$1; ST=$2; shift 2
OUT=/tmp/s6t/ab
(cd /tmp/s6t/old && PYTHONPATH=/tmp/s6t/old nice -n 10 /work/main/.venv/bin/python bench/load.py "$@" --json $OUT/old_$TAG.json > $OUT/old_$TAG.log 2>&1) &
(cd /work/main && nice -n 10 .venv/bin/python bench/load.py "$@" --json $OUT/new_$TAG.json > $OUT/new_$TAG.log 2>&1) &
if [ "$ST" != 0 ]; then
  sleep 20
  for side in old new; do
    if [ $side = old ]; then pat="wnn-load"; fi
  done
  for side in old new; do
    lp=$(pgrep -f "bench/load.py.*--json $OUT/${side}_$TAG.json" | head -1)
    pid=$(pgrep -P $lp -f "webnn.cli import main" | head -1)
    echo "$side load $lp server $pid"
    if [ "$ST" = 1 ]; then timeout 20 strace -f -e trace=mmap,munmap -qq -o $OUT/st_${side}_$TAG.txt -p $pid & fi
    echo "$pid" > $OUT/pid_${side}_$TAG
  done
  if [ "$ST" = 2 ]; then
    for side in old new; do awk '{print $10, $14+$15}' /proc/$(cat $OUT/pid_${side}_$TAG)/stat > $OUT/flt0_${side}_$TAG; done
    sleep 20
    for side in old new; do awk '{print $10, $14+$15}' /proc/$(cat $OUT/pid_${side}_$TAG)/stat > $OUT/flt1_${side}_$TAG; done
  fi
fi
wait
for side in old new; do
  /work/main/.venv/bin/python - $OUT/${side}_$TAG.json $OUT/st_${side}_$TAG.txt $side <<'PY'
import json,sys,os
r=json.load(open(sys.argv[1])); 
def find(d,k):
    if isinstance(d,dict):
        for a,b in d.items():
            if a==k: return b
            x=find(b,k)
            if x is not None: return x
cpu=find(r,"cpu_mean_pct"); acc=find(r,"accepted_updates_per_s"); m=find(r,"merges_per_s")
s=""
if os.path.exists(sys.argv[2]):
    t=open(sys.argv[2]).read()
    s=f" mmap4M/s {t.count('mmap(NULL, 4009984')/20:.2f} munmap4M/s {t.count(', 4009984)')/20:.2f} mmap>=1M/s {sum(1 for l in t.splitlines() if 'mmap(NULL, ' in l and int(l.split('mmap(NULL, ')[1].split(',')[0])>=1<<20)/20:.2f}"
f0=sys.argv[2].replace("st_","flt0_").replace(".txt",""); f1=f0.replace("flt0_","flt1_")
if os.path.exists(f1):
    a=open(f0).read().split(); b=open(f1).read().split()
    s+=f" minflt/s {(int(b[0])-int(a[0]))/20:.0f} cpu-ticks {int(b[1])-int(a[1])}"
print(f"{sys.argv[3]}: cpu% {cpu} acc/s {acc} merges/s {m} ms/update {cpu*10/acc:.2f}{s}")
PY
done
