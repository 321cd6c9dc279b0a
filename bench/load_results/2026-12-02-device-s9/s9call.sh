#!/usr/bin/env bash
# Session 9's device call (issue 11): 1M parameters without think time, one server ALONE on the
# machine (core 0; nothing else running beside it, unlike bench/ingest_device.sh's four servers at
# once), then bench/ingest_device.sh's ENC=1 slot (f32 against q8f16 clients, with the float16
# copies at most every 50 ms). Run from the repository root on the device:
#   NO_NODE=1 bash bench/device_setup.sh && export PYTHONPATH=$PWD && \
#     COMMIT=<sha> bash bench/load_results/2026-12-02-device-s9/s9call.sh
# Results under $OUT: solo.tar.gz (reports, logs), solo.txt (the table), enc/ (ingest_device's).
# ALT=1 (call 2): instead, f32 and q8f16 clients in turn, three rounds, 30 s windows, no ENC slot.
# CMP=1 OLD_TAR=<git archive of an older webnn, gzipped> (call 3): that package's server and this
# tree's in turn, f32 then q8f16 clients, two rounds, 25 s windows, no ENC slot.
# SCALE=small: toy sizes on cores 0-1, to check the script on any machine.
set -u
cd "$(dirname "$0")/../../.."
OUT=${OUT:-/tmp/s9call}; mkdir -p "$OUT"; J=$(mktemp -d /tmp/s9solo.XXXX)
C=${COMMIT:?pass the commit in: the device may hold an older .git}
L="python3 $PWD/bench/load.py --commit $C"
[ -x .venv/bin/python ] && L="$PWD/.venv/bin/python $PWD/bench/load.py --commit $C"
if [ "${SCALE:-}" = small ]; then P=20000 W=2 D=6 G1=1 GN=1; else P=1000000 W=8 D=45 G1=1 GN=1-7; fi
{ nproc; uptime; python3 --version; lscpu | grep -E "Model name|MHz|L2|L3|Flags" | cut -c1-400; grep -m1 MHz /proc/cpuinfo; } > "$OUT/machine.txt" 2>&1
solo() {  # NAME LOAD_CPUS CLIENTS [load.py args]
  local name=$1 cpus=$2 clients=$3; shift 3
  $L --server-cpus 0 --load-cpus "$cpus" --params $P --clients "$clients" --think 0 --warmup $W \
     --duration $D "$@" --json "$J/$name.json" > "$J/$name.log" 2>&1
}
if [ -n "${CMP:-}" ]; then  # call 3: this tree beside OLD_TAR's package, alone in turn
  OLD=$(mktemp -d /tmp/s9old.XXXX); tar xzf "${OLD_TAR:?a git archive of the old webnn}" -C "$OLD"
  ln -s "$PWD/client_js" "$OLD/client_js"
  [ "${SCALE:-}" = small ] || D=25
  old() { (cd "$OLD" && solo "$@" --server-env=PYTHONPATH=$OLD); }
  for round in 1 2; do
    for enc in f32 q8f16; do
      old "C${round}_${enc}_old" "$GN" 40 --encoding $enc
      solo "C${round}_${enc}_new" "$GN" 40 --encoding $enc
    done
  done
elif [ -n "${ALT:-}" ]; then  # call 2: f32 and q8f16 clients (the shipped default) in turn
  [ "${SCALE:-}" = small ] || D=30
  for round in 1 2 3; do
    solo "A${round}_f32_c40" "$GN" 40 --encoding f32
    solo "A${round}_q8f16_c40" "$GN" 40 --encoding q8f16
  done
else  # call 1
  solo S1_asyncio_c40 "$GN" 40
  solo S2_uvloop_c40 "$GN" 40 --server-arg=--loop=uvloop
  solo S3_asyncio_c100 "$GN" 100
  solo S4_asyncio_c30_p1 "$G1" 30 --processes 1   # the 2-core machine's command, for comparison
  solo S5_asyncio_c40_again "$GN" 40
fi
python3 - "$J" > "$OUT/solo.txt" <<'PY'
import json, pathlib, sys
print(f"{'run':24s} {'enc':>5s} {'merges/s':>8s} {'cpu %':>6s} {'ms cpu/upd':>10s} {'p99 s':>6s} "
      f"{'errors':>6s} {'503':>5s} {'gen cpu % max':>13s} {'extra task reqs':>15s} "
      f"{'together':>8s}")
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    r = json.loads(path.read_text())
    cpu, rate = r["server"]["cpu_mean_pct"], r["accepted_updates_per_s"]
    lat = r["latency_s"]
    p99 = (lat.get("update") or {}).get("p99") or float("nan")
    tasks = (lat.get("task") or {}).get("count", 0) / max((lat.get("update") or {}).get("count", 1), 1)
    gen = max(r["generator"]["cpu_pct_per_process"])
    final = r["server"].get("final_status") or {}
    together = (final.get("capacity") or {}).get("mergesTogether")  # absent before session 9
    share = "-" if together is None else f"{together / max(final.get('merges') or 1, 1):.2f}"
    print(f"{path.stem:24s} {r.get('encoding', 'f32'):>5s} {r['merges_per_s']:8.1f} {cpu:6.1f} {cpu * 10 / rate:10.2f} {p99:6.3f} "
          f"{r['errors_total']:6d} {r['busy_503_total']:5d} {gen:13.1f} {tasks:15.3f} {share:>8s}")
PY
(cd "$J" && tar czf "$OUT/solo.tar.gz" ./*.json ./*.log)
cat "$OUT/machine.txt" "$OUT/solo.txt"
[ "${SCALE:-}" = small ] || [ -n "${ALT:-}${CMP:-}" ] && exit 0
OUT=$OUT/enc ENC=1 COMMIT=$C D=40 bash bench/ingest_device.sh
