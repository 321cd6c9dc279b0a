#!/usr/bin/env bash
# Node client efficiency (issue 11: a participating client at >= 0.9 of raw TF.js `model.fit`) on
# an unshared machine, this tree's server beside an older server side by side: each server on a
# core of its own, each `bench/client_efficiency.mjs` on three other cores, both pairs at once,
# at 5 and 10 local steps, then again on the swapped core sets. Chromium is not on the device.
#   bash bench/device_setup.sh && OLD_TAR=.devkit/old_<commit>.tar.gz bash bench/client_efficiency_device.sh
# OLD_TAR: `git archive <commit> webnn | gzip` (the package alone; specs, data and client are this
# tree's). ROUNDS (default 21) and ROUNDS10 (15) set the rounds of 10 tasks per run; CORES_A and
# CORES_B ("0 1-3", "8 9-11") the core sets.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD OUT=${OUT:-/tmp/client_efficiency}; mkdir -p "$OUT"
R=$(mktemp -d /tmp/ce.XXXX)  # the runs' files; $OUT gets them as one tarball and a summary
OLD=$(mktemp -d /tmp/ceold.XXXX)
tar xzf "${OLD_TAR:?the old package: git archive COMMIT webnn | gzip}" -C "$OLD"
ln -s "$PWD/client_js" "$OLD/client_js"
python3 - <<'PY'
import json
spec = json.load(open("model_specs/digits_mlp.json"))
spec["training"]["localSteps"] = 10
json.dump(spec, open("/tmp/digits_mlp_10.json", "w"))
PY
nproc; uptime; node --version
serve() {  # serve NAME CPU PORT SPEC [PYTHONPATH]
  local log="$R/serve_$1.log"
  if [ -n "${5:-}" ]; then
    (cd "$5" && PYTHONPATH="$5" taskset -c "$2" "${PY:-python3}" -m webnn serve "$4" \
      --data "$ROOT/data_modules/digits.py" --port "$3" > "$log" 2>&1) &
  else
    taskset -c "$2" "${PY:-python3}" -m webnn serve "$4" --data data_modules/digits.py --port "$3" > "$log" 2>&1 &
  fi
  for _ in $(seq 1 120); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$3/api/v1/status')" \
      2>/dev/null && return 0
    sleep 0.5
  done
  echo "server $1 did not start" >&2; tail -5 "$log" >&2
}
pass() {  # pass TAG STEPS ROUNDS NEW_CPUS OLD_CPUS  (CPUS: "server-cpu bench-cpus")
  local tag=$1 steps=$2 rounds=$3 n=($4) o=($5) spec=model_specs/digits_mlp.json
  [ "$steps" = 10 ] && spec=/tmp/digits_mlp_10.json
  serve "new_$tag" "${n[0]}" 8181 "$(realpath "$spec")"
  serve "old_$tag" "${o[0]}" 8182 "$(realpath "$spec")" "$OLD"
  taskset -c "${n[1]}" node bench/client_efficiency.mjs --server http://127.0.0.1:8181/ \
    --rounds "$rounds" --tasks 10 > "$R/new_$tag.txt" 2>&1 & local a=$!
  taskset -c "${o[1]}" node bench/client_efficiency.mjs --server http://127.0.0.1:8182/ \
    --rounds "$rounds" --tasks 10 > "$R/old_$tag.txt" 2>&1 & local b=$!
  wait $a $b
  for p in 8181 8182; do
    python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$p/metrics').read().decode())" \
      | grep -E 'webnn_(request_seconds|merge_seconds)_(sum|count)\{?.*' | grep -E 'update|merge_seconds' \
      > "$R/metrics_${p}_$tag.txt"
  done
  pkill -f "webnn serve" ; sleep 1
}
A=${CORES_A:-"0 1-3"} B=${CORES_B:-"8 9-11"}  # "server-cpu bench-cpus" of the two core sets
pass s5a 5 "${ROUNDS:-21}" "$A" "$B"
pass s5b 5 "${ROUNDS:-21}" "$B" "$A"
pass s10a 10 "${ROUNDS10:-15}" "$A" "$B"
pass s10b 10 "${ROUNDS10:-15}" "$B" "$A"
uptime
for f in "$R"/new_*.txt "$R"/old_*.txt; do echo "== $f"; grep -v '^{' "$f" | tail -6; done | tee "$OUT/summary.txt"
tar czf "$OUT/client_efficiency.tgz" -C "$R" .
