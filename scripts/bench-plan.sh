#!/usr/bin/env bash
# End-to-end bench of the dry run: generates an HR export of N workers (default 10,000) with
# the example config's columns, then times `hrsync plan --format json` over it (release build).
set -euo pipefail
cd "$(dirname "$0")/.."
workers="${1:-10000}"
if [ -n "${BENCH_DIR:-}" ]; then
  dir="$BENCH_DIR"; mkdir -p "$dir"   # keep the export and the plan to look at
else
  dir="$(mktemp -d)"; trap 'rm -rf "$dir"' EXIT
fi

python3 scripts/gen-workers.py "$workers" "$dir/workers.csv"

cargo build --release -q -p hrsync
for run in 1 2 3; do
  start=$(date +%s.%N)
  ./target/release/hrsync plan --config examples/hrsync.toml --input "$dir/workers.csv" \
    --now 2026-12-01T09:00:00Z --format json > "$dir/plan.json"
  end=$(date +%s.%N)
  python3 - "$dir/plan.json" "$start" "$end" "$workers" "$run" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))
elapsed = float(sys.argv[3]) - float(sys.argv[2])
n = int(sys.argv[4])
print(f"run {sys.argv[5]}: hrsync plan over {n} workers in {elapsed:.2f} s = {n / elapsed:,.0f} workers/s; {plan['summary']}")
PY
done
