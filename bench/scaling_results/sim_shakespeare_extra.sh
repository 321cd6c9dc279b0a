#!/usr/bin/env bash
# Further simulator settings on the frozen corpus, with sim_shakespeare.sh's flags (run after it):
# server momentum on rounds of 16 deltas (FedAvgM, Hsu et al. 2019, as `fedopt optimizer=avgm`
# with k = 16, Reddi et al. 2021) with the sqrt(N) client rate and 5-step tasks; with WARMUP=only,
# a client rate warmed up over the first 10 task times (Goyal et al. 2017) instead, to allow a
# larger rate (0.08) or server rate (0.75).
#   bash bench/scaling_results/sim_shakespeare_extra.sh OUTFILE; WARMUP=only bash ... OUTFILE;
#   WARMUP=more bash ... OUTFILE (the rate 0.08 without warm-up, 0.16 with it)
set -u
cd "$(dirname "$0")/../.."
out=${1:-sim_shakespeare_extra.txt}
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
common="--data text --hidden 256 --seeds 1 2 3 --target 0.375 --milestones 0.3 0.325 0.34 0.35 0.36 --overhead 0.05 --max-updates 3000"
LIVE=webnn.merge.fedbuff_live:FedBuffLive
jobs=(
  "--clients 16 --config 'fedopt optimizer=avgm k=16 server_lr=0.25 beta1=0.5|adam lr=0.04 steps=5'"
  "--clients 16 --config 'fedopt optimizer=avgm k=16 server_lr=0.5 beta1=0.5|adam lr=0.04 steps=5'"
)
if [ "${WARMUP:-}" = only ]; then  # the warm-up jobs (run second, after the two above)
  jobs=(
    "--clients 16 --config '$LIVE server_lr=0.5|adam lr=0.08 steps=5 warmup=10'"
    "--clients 16 --config '$LIVE server_lr=0.75|adam lr=0.04 steps=5 warmup=10'"
  )
fi
if [ "${WARMUP:-}" = more ]; then  # is it the warm-up or the rate? (run third)
  jobs=(
    "--clients 16 --config '$LIVE server_lr=0.5|adam lr=0.08 steps=5'"
    "--clients 16 --config '$LIVE server_lr=0.5|adam lr=0.16 steps=5 warmup=10'"
  )
fi
. bench/scaling_results/sim_jobs.sh
run_jobs
