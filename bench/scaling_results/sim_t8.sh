#!/usr/bin/env bash
# Session 8, issue 15: the teacher workload (data_modules/teacher.py, teacher_hidden 16,
# label_noise 0.3; the simulator's copy of bench/specs/teacher_mlp.json) in the calibrated
# simulator, device seconds: a task of L steps of B examples takes FIXED + L c(B), c(B) the
# device's text step of 32 (0.152 s, docs/scaling.md) times the dense step's cost in text steps
# measured side by side in Node (bench/step_time.mjs --model dense, relText32: 0.589 / 0.909 /
# 1.564 / 2.450 for B = 32 / 64 / 128 / 256, 30 paired rounds), FIXED = 0.065 s (the text
# exchange's 0.055 s plus the larger weights); 16 clients share 14 worker cores on the device
# (bench/scaling.py --pin), so their compute is priced 16/14 higher; one validation 1.5 s.
# Milestones: the clean validation accuracy 0.75 ... 0.84 (chance 0.10, Bayes-optimal 1.0).
#   JOBS=1 bash bench/scaling_results/sim_t8.sh OUTFILE [job numbers]
set -u
cd "$(dirname "$0")/../.."
out=${1:-sim_t8.txt}
shift || true
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
SIM="$PY bench/scaling_sim.py --data teacher --data-option teacher_hidden=16 --data-option label_noise=0.3 --hidden 256 256 --seeds 1 2 3 --target 0.99 --eval-seconds 1.5 --milestones 0.75 0.775 0.8 0.82 0.84"
c64=0.138 c128=0.238 c256=0.372
task() { $PY -c "import sys; f, L, c, s = map(float, sys.argv[1:]); print(round(f + L * c * s, 4))" 0.065 "$@"; }
jobs=(
  "1 500 $(task 10 $c64 1) average|adam lr=0.004 batch=64 steps=10"
  "1 500 $(task 10 $c128 1) average|adam lr=0.006 batch=128 steps=10"
  "1 500 $(task 10 $c256 1) average|adam lr=0.008 batch=256 steps=10"
  "1 500 $(task 10 $c256 1) average|adam lr=0.011 batch=256 steps=10"
  "8 150 $(task 2 $c128 1) average|adam lr=0.015 batch=128 steps=2"
  "8 150 $(task 2 $c256 1) average|adam lr=0.015 batch=256 steps=2"
  "16 120 $(task 1 $c256 1.1429) average|adam lr=0.02 batch=256 steps=1"
  "16 120 $(task 2 $c128 1.1429) average|adam lr=0.015 batch=128 steps=2"
  "8 150 $(task 2 $c256 1) average|adam lr=0.012 batch=256 steps=2"
  "16 120 $(task 2 $c256 1.1429) average|adam lr=0.015 batch=256 steps=2"
)
pick=("$@")
[ ${#pick[@]} -eq 0 ] && pick=($(seq 1 ${#jobs[@]}))
for k in "${pick[@]}"; do
  read -r n until ts cfg <<< "${jobs[$((k - 1))]}"
  echo "\$ python bench/scaling_sim.py ... --clients $n --until $until --task-seconds $ts --config \"$cfg\"" >> "$out"
  nice -n 19 env OMP_NUM_THREADS=1 $SIM --clients "$n" --until "$until" --task-seconds "$ts" \
    --config "$cfg" >> "$out" 2>&1
done
