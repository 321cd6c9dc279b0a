#!/usr/bin/env bash
# Issue 11's "1M parameters, clients without think time: >= 200 merges/s with average" on the
# 16-core device, in ONE call (about 5 minutes): the server of this tree (update bodies received
# straight into the pooled buffer, docs/capacity.md) beside the server before it ("old": this
# tree's package with that receive switched off, `ingest._read_into(direct=False)`, or with
# OLD_TAR a `git archive <commit> webnn | gzip` of another; run through --server-env=PYTHONPATH
# from its own directory; the generator is this tree's in both), four servers at once, each on
# its own core with its generator on three cores of its own, in three slots; old and new swap
# core sets between slots 1 and 2 so each runs on both:
#   slot 1: A new/asyncio (0 | 1-3)   B old/asyncio (4 | 5-7)   C new/uvloop (8 | 9-11)
#           D new/asyncio --screen off (12 | 13-15)
#   slot 2: A old/asyncio             B new/asyncio             C old/uvloop    D old --screen off
#   slot 3: A new/asyncio, 200 clients  B new/uvloop, 200 clients  C new/asyncio, 40 clients
#           D new/uvloop --screen off
# Each run: 1M parameters, --think 0, 8 s warm-up, 45 s window (--duration), default limits.
# Device usage (carry [".devkit"] for its set-up):
#   (bash bench/device_kit.sh here first: it packs .devkit/)
#   NO_NODE=1 bash bench/device_setup.sh && export PYTHONPATH=$PWD && COMMIT=<sha> bash bench/ingest_device.sh
# Results (2 files; the device returns at most 8): $OUT/ingest11.tar.gz (every run's JSON report
# and log) and $OUT/ingest11.txt (per run: merges/s, server CPU, ms of server CPU per update).
# PAIRS=1 runs one slot instead (about 75 s): new on A and D, old on B and C, asyncio, screening on.
# ENC=1 runs one slot of four servers of this tree instead (about 70 s), clients by encoding
# (bench/load.py --encoding; q8f16 = what the shipped clients get by default): A f32 (0 | 1-3),
# B q8f16 (4 | 5-7), C q8f16 (8 | 9-11), D f32 (12 | 13-15); 1M x 100 clients, no think, 8 s
# warm-up, 40 s window (D=40 unless D is given).
# SCALE=small runs the same layout at toy sizes on cores 0 and 1 (a smoke test on any machine).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ingest11}; mkdir -p "$OUT"; J=$(mktemp -d /tmp/ingest11.XXXX)
L="python3 $PWD/bench/load.py"
[ -x .venv/bin/python ] && L="$PWD/.venv/bin/python $PWD/bench/load.py"
L="$L --commit ${COMMIT:-unknown}"
OLD=$(mktemp -d /tmp/ingest11old.XXXX)
if [ -n "${OLD_TAR:-}" ]; then  # the package alone; the browser client it serves is this tree's
  tar xzf "$OLD_TAR" -C "$OLD"
else  # this tree's package with the receive into place off: chunks only, as before it
  cp -r webnn "$OLD/webnn"
  sed -i 's/timeout: float = 10.0, \*, direct: bool = True) -> int:/timeout: float = 10.0, *, direct: bool = False) -> int:/' "$OLD/webnn/server/ingest.py"
  grep -q "direct: bool = False" "$OLD/webnn/server/ingest.py" || { echo "could not switch the old read on"; rm -rf "$OLD/webnn"; }
fi
ln -s "$PWD/client_js" "$OLD/client_js"
if [ "${SCALE:-}" = small ]; then
  P=20000 W=2 D=${D:-6} CB=8 CM=16 CS=4
  A="0 1" B="1 0" C="0 1" D4="1 0"
else
  P=1000000 W=8 D=${D:-$([ -n "${ENC:-}" ] && echo 40 || echo 45)} CB=100 CM=200 CS=40
  A="0 1-3" B="4 5-7" C="8 9-11" D4="12 13-15"
fi
nproc; uptime; python3 --version
python3 -c 'import uvloop; print("uvloop", uvloop.__version__)' || echo "uvloop missing"
run() {  # run NAME "SERVER_CPUS LOAD_CPUS" WHICH(new|old) LOOP CLIENTS [more load.py args]
  local name=$1 cpus=($2) which=$3 loop=$4 clients=$5; shift 5
  local env=() dir=$PWD
  if [ "$which" = old ]; then  # the server runs `python -c` in the current directory: $OLD's webnn
    [ -d "$OLD/webnn" ] || return 0
    env=(--server-env=PYTHONPATH=$OLD) dir=$OLD
  fi
  cd "$dir" && $L --server-cpus ${cpus[0]} --load-cpus ${cpus[1]} --params $P --clients $clients --think 0 \
     --warmup $W --duration $D --server-arg=--loop=$loop "${env[@]}" "$@" \
     --json $J/$name.json > $J/$name.log 2>&1
  cd - > /dev/null
}
if [ -n "${ENC:-}" ]; then  # one slot: f32 and q8f16 clients, each on two core sets
  run EA_f32 "$A" new asyncio $CB --encoding f32 & run EB_q8f16 "$B" new asyncio $CB --encoding q8f16 &
  run EC_q8f16 "$C" new asyncio $CB --encoding q8f16 & run ED_f32 "$D4" new asyncio $CB --encoding f32 &
  wait
elif [ -n "${PAIRS:-}" ]; then  # one slot: new and old side by side on both pairs of core sets
  run PA_new_asyncio "$A" new asyncio $CB & run PB_old_asyncio "$B" old asyncio $CB &
  run PC_old_asyncio "$C" old asyncio $CB & run PD_new_asyncio "$D4" new asyncio $CB &
  wait
else
  run 1A_new_asyncio "$A" new asyncio $CB & run 1B_old_asyncio "$B" old asyncio $CB &
  run 1C_new_uvloop "$C" new uvloop $CB & run 1D_new_asyncio_noscreen "$D4" new asyncio $CB --screen off &
  wait
  run 2A_old_asyncio "$A" old asyncio $CB & run 2B_new_asyncio "$B" new asyncio $CB &
  run 2C_old_uvloop "$C" old uvloop $CB & run 2D_old_asyncio_noscreen "$D4" old asyncio $CB --screen off &
  wait
  run 3A_new_asyncio_c$CM "$A" new asyncio $CM & run 3B_new_uvloop_c$CM "$B" new uvloop $CM &
  run 3C_new_asyncio_c$CS "$C" new asyncio $CS & run 3D_new_uvloop_noscreen "$D4" new uvloop $CB --screen off &
  wait
fi
uptime
python3 - "$J" > "$OUT/ingest11.txt" <<'EOF'
import json, pathlib, sys
print(f"{'run':30s} {'merges/s':>8s} {'cpu %':>6s} {'ms cpu/upd':>10s} {'memcopy':>7s} "
      f"{'p99 s':>6s} {'errors':>6s} {'503':>5s} {'enc':>5s} {'body MB':>7s} {'answer MB':>9s}")
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    r = json.loads(path.read_text())
    cpu, rate = r["server"]["cpu_mean_pct"], r["accepted_updates_per_s"]
    p99 = (r["latency_s"].get("update") or {}).get("p99")
    print(f"{path.stem:30s} {r['merges_per_s']:8.1f} {cpu:6.1f} "
          f"{(cpu * 10 / rate if rate else float('nan')):10.2f} "
          f"{100 * r['ingest']['ratio_to_memcopy']:6.1f}% {p99 or float('nan'):6.3f} "
          f"{r['errors_total']:6d} {r['busy_503_total']:5d} {r.get('encoding', 'f32'):>5s} "
          f"{((r.get('bytes') or {}).get('per_update_body') or float('nan')) / 1e6:7.3f} "
          f"{((r.get('bytes') or {}).get('per_answer') or float('nan')) / 1e6:9.3f}")
EOF
cd $J && tar czf "$OUT/ingest11.tar.gz" ./*.json ./*.log
cat "$OUT/ingest11.txt"; tail -n 3 ./*.log | head -60
