#!/usr/bin/env bash
# Session 8, issue 15: the gradient noise scale B_simple (McCandlish et al. 2018) of the teacher
# workload (data_modules/teacher.py with bench/scaling.py's TEACHER_OPTIONS: teacher_hidden 16,
# label_noise 0.3; the simulator's copy of bench/specs/teacher_mlp.json) along a near-best one-client
# run (average, Adam 0.008, 10-step tasks of 256, device seconds at 3.79 s a task; Adam 0.011, the
# best, is within the seed spread of it: sim_t8.sh),
# seeds 1-3, 32,768 training examples per probe, probes every 20 tasks and at the first merge at
# each accuracy level; the same estimator as noise_scale.py (text), whose --summary bins them.
#   bash bench/scaling_results/noise_t8.sh OUTFILE
set -u
cd "$(dirname "$0")/../.."
out=${1:-noise_t8.txt}
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
levels="0.6 0.7 0.75 0.78 0.8 0.82 0.84"
run() {
  echo "\$ python bench/scaling_results/noise_teacher.py $*" >> "$out"
  nice -n 19 env OMP_NUM_THREADS=1 $PY bench/scaling_results/noise_teacher.py "$@" >> "$out" 2>&1
  echo >> "$out"
}
for seed in 1 2 3; do
  run --seed "$seed" --examples 32768 --config "average|adam lr=0.008 batch=256 steps=10" \
    --task-seconds 3.79 --data-option teacher_hidden=16 --data-option label_noise=0.3 \
    --tasks 10 40 80 120 --at-accuracy $levels
done
