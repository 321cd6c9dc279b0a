#!/usr/bin/env bash
# Merge the per-seed shards of one experiment (wnn compare CONFIG --seeds S --out DIR/sS) into one
# results directory and render it (docs/experiments.md, "Spreading one experiment over processes
# or machines"):
#   experiments/merge_shards.sh SHARDS_DIR OUT_DIR [EARLIER_RESULTS_DIR ...]
# SHARDS_DIR holds s1/, s2/, ... (each a wnn compare --out); OUT_DIR gets runs/ (every shard's and
# every EARLIER_RESULTS_DIR's runs: seeds measured before, e.g. docs/img/experiments/<name>), the
# config.json of the lowest shard (seeds: every seed its runs hold), its provenance.json, and
# each EARLIER dir's provenance as provenance_<dir name>_<n>.json; then `wnn compare --report
# OUT_DIR` writes summary.md/json, plots and report.html there and prints the table. A run file
# present twice is an error (same seed).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 SHARDS_DIR OUT_DIR [EARLIER_RESULTS_DIR ...]" >&2; exit 2; }
shards=$1; out=$2; shift 2
[ -d "$shards" ] || { echo "$0: $shards is not a directory" >&2; exit 2; }
[ -e "$out/runs" ] && { echo "$0: $out/runs exists; choose a new OUT_DIR" >&2; exit 2; }
mkdir -p "$out/runs"
first=""
for dir in $(ls -d "$shards"/s*/ 2>/dev/null | sort -V) "$@"; do
  dir=${dir%/}
  [ -d "$dir/runs" ] || { echo "$0: $dir has no runs/ (skipped)" >&2; continue; }
  for f in "$dir"/runs/*; do
    [ -e "$f" ] || continue
    [ -e "$out/runs/$(basename "$f")" ] && { echo "$0: $(basename "$f") twice ($dir)" >&2; exit 1; }
    cp "$f" "$out/runs/"
  done
  case "$dir" in
    "$shards"/s*) [ -n "$first" ] || first=$dir ;;
    *) n=$(find "$out" -maxdepth 1 -name "provenance_$(basename "$dir")_*.json" | wc -l)
       [ -f "$dir/provenance.json" ] && cp "$dir/provenance.json" \
         "$out/provenance_$(basename "$dir")_$((n + 1)).json" ;;
  esac
done
[ -n "$first" ] || { echo "$0: no shard with runs/ under $shards" >&2; exit 1; }
cp "$first/config.json" "$first/provenance.json" "$out/"
# the merged config lists every seed its runs hold (a shard's lists only its own)
python3 - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
config = json.loads((out / "config.json").read_text())
config["seeds"] = sorted({json.loads(p.read_text())["seed"] for p in (out / "runs").glob("*.json")})
(out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
PY
echo "merged $(ls "$out"/runs/*.json | wc -l) runs into $out (config and provenance of $first)"
wnn compare --report "$out"
