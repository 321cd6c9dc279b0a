#!/usr/bin/env bash
# f32 and q8f16 clients side by side: both servers at once on core 0, both generators on core 1,
# nice -n 10, 1M parameters, 30 clients without think time. Usage: load_rounds.sh 1 2 3 4
# (round numbers); writes f32_N.json, q8f16_N.json and summary.txt next to this script.
# ENCS="f32 f16" load_rounds.sh 11 12: another pair of encodings (bench/load.py --encoding).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
ARGS="--server-cpus 0 --load-cpus 1 --params 1000000 --clients 30 --think 0 --warmup 6 --duration 25 --processes 1"
for n in "$@"; do
  for enc in ${ENCS:-f32 q8f16}; do
    nice -n 10 .venv/bin/python bench/load.py $ARGS --encoding $enc --json "$HERE/${enc}_$n.json" > "$HERE/${enc}_$n.log" 2>&1 &
  done
  wait
done
.venv/bin/python - "$HERE" > "$HERE/summary.txt" <<'PY'
import json, pathlib, statistics, sys
here = pathlib.Path(sys.argv[1])
print(f"{'run':12s} {'merges/s':>8s} {'upd/s':>7s} {'cpu %':>6s} {'ms cpu/upd':>10s} "
      f"{'body MB':>8s} {'answer MB':>9s} {'ingest MB/s':>11s} {'errors':>6s} {'503':>5s} traffic")
ms = {}
for path in sorted((p for p in here.glob("*_*.json") if not p.stem.startswith("solo")), key=lambda p: (p.stem.split("_")[0], int(p.stem.split("_")[1]))):
    r = json.loads(path.read_text())
    cpu, rate = r["server"]["cpu_mean_pct"], r["accepted_updates_per_s"]
    per = cpu * 10 / rate
    ms.setdefault(path.stem.split("_")[0], {})[path.stem.split("_")[1]] = (per, r["merges_per_s"])
    b = r["bytes"]
    traffic = {k: sorted(v) for k, v in (b["traffic"] or {}).items()}
    print(f"{path.stem:12s} {r['merges_per_s']:8.1f} {rate:7.1f} {cpu:6.1f} {per:10.2f} "
          f"{b['per_update_body'] / 1e6:8.3f} {b['per_answer'] / 1e6:9.3f} "
          f"{r['ingest']['bytes_per_s'] / 1e6:11.1f} {r['errors_total']:6d} {r['busy_503_total']:5d} {traffic}")
for enc in sorted(set(ms) - {"f32"}):
    rounds = sorted(set(ms.get("f32", {})) & set(ms[enc]), key=int)
    if not rounds:
        continue
    ratio = [ms[enc][n][0] / ms["f32"][n][0] for n in rounds]
    merges = [ms[enc][n][1] / ms["f32"][n][1] for n in rounds]
    print(f"rounds {' '.join(rounds)}:")
    print(f"  {enc}/f32 ms per update per round:", " ".join(f"{x:.3f}" for x in ratio),
          f"median {statistics.median(ratio):.3f}")
    print(f"  {enc}/f32 merges/s per round:     ", " ".join(f"{x:.3f}" for x in merges),
          f"median {statistics.median(merges):.3f}")
    for name in ("f32", enc):
        per = [ms[name][n][0] for n in rounds]
        print(f"  {name} ms per update median {statistics.median(per):.2f}")
PY
cat "$HERE/summary.txt"
