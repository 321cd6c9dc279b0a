# Sourced by the sim_*.sh scripts of this folder: run bench/scaling_sim.py once per job.
#   sim_job JOB      one run, niced, one thread; its command line, then its output, appended to $out
#   run_jobs [N...]  every job of the array `jobs` (only the 1-based numbers N when given),
#                    JOBS at a time (default 2: a shared 2-core machine)
# Needs: $PY (the Python), $common (flags of every run), $out (the output file), run from the
# repository root.
sim_job() {
  local log
  log=$(mktemp)
  eval "nice -n 10 env OMP_NUM_THREADS=1 $PY bench/scaling_sim.py $common $1" > "$log" 2>&1
  { echo "\$ python bench/scaling_sim.py $common $1"; cat "$log"; echo; } >> "$out"
  rm -f "$log"
}

run_jobs() {
  local wanted=" $* " running=0 i=0 job
  for job in "${jobs[@]}"; do
    i=$((i + 1))
    if [ "$wanted" != "  " ] && [[ "$wanted" != *" $i "* ]]; then continue; fi
    if [ "$running" -ge "${JOBS:-2}" ]; then wait -n; running=$((running - 1)); fi
    sim_job "$job" &
    running=$((running + 1))
  done
  wait
}
