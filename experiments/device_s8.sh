#!/usr/bin/env bash
# Issue 13's remaining `wnn compare` runs in one device call (16 cores, <= 560 s of wall time).
# Run after the device kit:  bash .devkit/setup.sh >/dev/null && export PYTHONPATH=$PWD &&
#   bash experiments/device_s8.sh          (carry: .devkit/setup.sh, wheels, wheels13, node.xz,
#                                           node_modules.tar.xz; results go to $OUT)
# Each seed is its own shard (`wnn compare CONFIG --seeds S`), all shards at once:
#   cores 0-8 : label_skew_churn32.toml seeds 1-5 (32 Node clients each, 4 runs per shard)
#   cores 9-15: five chains, chain s = label_skew.toml seed s (8 clients, 3 runs), then
#               poisoning_label_skew.toml seed s+5 (10 clients, 6 runs): the extra seeds, which
#               get what the deadline leaves (the lowest priority of the three).
# Every shard stops by SIGINT at the shared deadline (BUDGET seconds after the script starts,
# `timeout -k 20 -s INT`): an interrupted `wnn compare` keeps and reports its finished runs.
# Then each experiment's shards are merged (experiments/merge_shards.sh; poisoning with seeds
# 1-5 from docs/img/experiments/poisoning_label_skew) and rendered; $OUT gets results.tgz (runs,
# summaries, plots, shard logs with each shard's CPU seconds, load samples) and logs.tgz (the
# workers' logs, dropped if over 15 MB).
# Knobs (for a local smoke test): SEEDS ("1 2 3 4 5"), MERGES (a temp copy of each config with
# that stop.merges), BUDGET (s, default 460), PARTS ("churn32 label_skew poisoning"),
# CORES_A / CORES_B (taskset lists, default 0-8 / 9-15), R (work dir, default /tmp/s8r).
# Sizing (CPU seconds of each shard's process tree, from a 2-core smoke test at 10 merges, and the
# 16-core call of 2026-12-01: 50 runs of 10-16 clients, 400 merges, in ~142 s at load 124): a Node
# client costs ~1.3-1.7 CPU s to start (churned phones start again), a merge ~0.06 CPU s. Estimate:
# churn32 ~20 runs x ~100-120 s = 2000-2400 CPU s on 9 cores (~250 s); label_skew 15 x ~33 = 500
# and poisoning seeds 6-10 30 x ~45 = 1350 CPU s on 7 cores (~265 s). Expected: compare done at
# ~250-300 s, the call (setup ~20 s, merge and tar ~30 s) ~300-350 s; 560 s at worst (the deadline).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
: "${OUT:?set OUT to the results folder}"
SEEDS=${SEEDS:-1 2 3 4 5}
BUDGET=${BUDGET:-460}
PARTS=${PARTS:-churn32 label_skew poisoning}
CORES_A=${CORES_A:-0-8}
CORES_B=${CORES_B:-9-15}
R=${R:-/tmp/s8r}
START=$(date +%s); END=$((START + BUDGET))
mkdir -p "$OUT" && rm -rf "$R" && mkdir -p "$R/cfg"
echo "nproc $(nproc)"; uptime; echo "commit $(git rev-parse --short HEAD 2>/dev/null) budget ${BUDGET}s"
command -v wnn >/dev/null && command -v node >/dev/null || { echo "no wnn or node on PATH" >&2; exit 2; }

# the config to run: the shipped one, or with MERGES a copy with that budget (model and data
# paths made absolute, since the copy lives elsewhere)
config() {
  local src=experiments/$1.toml
  if [ -z "${MERGES:-}" ]; then echo "$src"; return; fi
  sed -e "s|^merges = .*|merges = $MERGES|" -e "s|\"\.\./|\"$ROOT/|" "$src" > "$R/cfg/$1.toml"
  echo "$R/cfg/$1.toml"
}
declare -A CFG
for name in label_skew label_skew_churn32 poisoning_label_skew; do CFG[$name]=$(config "$name"); done
has() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# one shard: NAME SEED CORES; stops at the deadline; logs its CPU seconds (its children's, from
# `times`: every worker is reaped by wnn compare)
shard() {
  local name=$1 seed=$2 cores=$3 left
  left=$((END - $(date +%s)))
  if [ "$left" -lt 40 ]; then echo "$name seed $seed: skipped, ${left}s left" | tee -a "$R/skipped.log"; return; fi
  (
    echo "$name seed $seed on cores $cores, ${left}s left, start $(date -u +%T)"
    taskset -c "$cores" timeout -k 20 -s INT "$left" wnn compare "${CFG[$name]}" --seeds "$seed" \
      --out "$R/$name/s$seed"
    echo "exit $? at $(date -u +%T) after $(( $(date +%s) - START ))s; cpu (user sys / children):"; times
  ) > "$R/${name}_s$seed.log" 2>&1
}

# load and memory every ~10 s, until $R/stop exists
(while [ ! -e "$R/stop" ]; do
   echo "$(( $(date +%s) - START ))s load $(cut -d' ' -f1-3 /proc/loadavg) $(free -m | awk '/Mem:/{print $3" MiB used"}')"
   for _ in 1 2 3 4 5; do [ -e "$R/stop" ] && break; sleep 2; done
 done) > "$R/load.log" 2>&1 &
SAMPLER=$!
PIDS=""
for s in $SEEDS; do
  if has churn32; then shard label_skew_churn32 "$s" "$CORES_A" & PIDS="$PIDS $!"; fi
  (
    if has label_skew; then shard label_skew "$s" "$CORES_B"; fi
    if has poisoning; then shard poisoning_label_skew $((s + 5)) "$CORES_B"; fi
  ) & PIDS="$PIDS $!"
done
# shellcheck disable=SC2086
wait $PIDS
touch "$R/stop"; wait "$SAMPLER"
echo "compare done after $(( $(date +%s) - START ))s"; uptime

# merge and render (the lead can redo this from results.tgz: /work/notes/s8_exp13_after.md)
cd "$R"
for name in label_skew label_skew_churn32 poisoning_label_skew; do
  [ -d "$name" ] || continue
  earlier=""
  [ "$name" = poisoning_label_skew ] && earlier=$ROOT/docs/img/experiments/poisoning_label_skew
  # shellcheck disable=SC2086
  timeout 60 bash "$ROOT/experiments/merge_shards.sh" "$name" "merged/$name" $earlier > "report_$name.txt" 2>&1
  echo "== $name (exit $?)"; tail -n 25 "report_$name.txt"
done
if [ -d merged/poisoning_label_skew ]; then
  python3 "$ROOT/experiments/paired.py" merged/poisoning_label_skew median-signflip mean-signflip | tee paired_poisoning.txt
  python3 "$ROOT/experiments/paired.py" merged/poisoning_label_skew median-signflip mean-signflip --seeds 6-10 | tee -a paired_poisoning.txt
fi
if [ -d merged/label_skew_churn32 ]; then  # each gap at 32 clients minus the same gap at 16
  for e in fedbuff-k8 fedasync-hinge fedavgm-k8; do
    python3 "$ROOT/experiments/paired.py" merged/label_skew_churn32 "$e" average \
      --against "$ROOT/docs/img/experiments/label_skew_churn"
  done | tee paired_churn32_vs_16.txt
fi
# shellcheck disable=SC2046
tar czf "$OUT/results.tgz" --exclude=logs --exclude='*.png' $(ls -d label_skew label_skew_churn32 poisoning_label_skew merged 2>/dev/null) ./*.log ./*.txt
# shellcheck disable=SC2046
tar czf "$OUT/logs.tgz" $(ls -d */s*/logs 2>/dev/null) 2>/dev/null
if [ "$(stat -c %s "$OUT/logs.tgz" 2>/dev/null || echo 0)" -gt 15000000 ]; then
  echo "logs.tgz over 15 MB: dropped"; rm -f "$OUT/logs.tgz"
fi
ls -la "$OUT"; grep -h "^exit\|skipped" ./*_s*.log ./skipped.log 2>/dev/null
echo "total $(( $(date +%s) - START ))s"
