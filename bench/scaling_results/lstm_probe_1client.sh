#!/bin/sh
# LSTM probe (docs/scaling.md "Next candidate: an LSTM text workload (probe)"): one real Node
# client (bench/scaling.py, seed 1, `average`, Adam 0.01, batch 32, 10-step tasks) on
# text_lstm, then on text (text_mlp), each for CAP seconds (default 150) after the client joined,
# one after the other on this machine; prints each run's validation accuracy against time and
# optimiser steps (RENDER=1: only print the runs already in $OUT). Output: bench/scaling_results/lstm_probe_1client_2026-12-02.txt
cd "$(dirname "$0")/../.." || exit 1
export OMP_NUM_THREADS=1
OUT=${OUT:-${TMPDIR:-/tmp}/lstm_probe}
CAP=${CAP:-150}
mkdir -p "$OUT"
for w in text_lstm text; do
  [ -n "$RENDER" ] || nice -n 10 .venv/bin/python bench/scaling.py --workload "$w" --clients 1 --seeds 1 \
    --setting "1=average lr=0.01" --cap "$CAP" --out "$OUT/$w" > "$OUT.$w.log" 2>&1 \
    || { echo "$w failed:"; tail -20 "$OUT.$w.log"; }
  echo "# $w, 1 client, seed 1, cap $CAP s"
  .venv/bin/python - "$OUT/$w/scaling.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
for run in report["runs"]:
    steps = run["local_steps"]
    print(f"updates/s {run['updates_per_second']:.3f} (steps/s {steps * run['updates_per_second']:.2f}),"
          f" best acc {run['best_accuracy']}, final {run['final_accuracy']}")
    seen = [h for h in run["history"] if h["acc"] is not None and h["t"] >= 0]
    marks, k = [15, 30, 45, 60, 90, 120, 150, 180, 240, 300, 450], 0
    for i, h in enumerate(seen):
        if k < len(marks) and h["t"] >= marks[k] or i == len(seen) - 1:
            print(f"  t {h['t']:7.1f} s  steps {h['merges'] * steps:5d}  acc {h['acc']:.4f}  loss {h['loss']:.4f}")
        while k < len(marks) and h["t"] >= marks[k]:
            k += 1
    for target in (0.25, 0.30, 0.33, 0.35):
        first = next((h for h in seen if h["acc"] >= target), None)
        print(f"  first >= {target}: " + (f"t {first['t']} s, steps {first['merges'] * steps}" if first else "not reached"))
PY
done
