#!/usr/bin/env bash
# End-to-end bench of the local runtime (release build), against the sandbox directory running
# as its own process (in memory, like a remote Entra):
#   1. `hrsync import` of a generated export of N workers (default 10,000): workers/second,
#      from the command's start to its return (every account created, every timer set);
#   2. webhook-to-account latency: M signed webhooks (default 200), one at a time, each a new
#      hire, sent to `hrsync serve`; the time until the account is visible through Graph
#      (polled every 2 ms), p50 / p99 / max.
# Usage: scripts/bench-pipeline.sh [N] [M]
set -euo pipefail
cd "$(dirname "$0")/.."
workers="${1:-10000}"
webhooks="${2:-200}"
dir="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

cargo build --release -q -p hrsync
bin=./target/release/hrsync

start_sandbox() { # -> URL in $sandbox_url
  "$bin" sandbox --listen 127.0.0.1:0 --seed-from examples/hrsync.toml 2> "$dir/sandbox-$1.log" &
  pids+=($!)
  for _ in $(seq 100); do
    sandbox_url=$(sed -n 's/.*Graph at \(http:\/\/[^/]*\)\/v1.0.*/\1/p' "$dir/sandbox-$1.log")
    [ -n "$sandbox_url" ] && return
    sleep 0.1
  done
  echo "the sandbox did not start" >&2; exit 1
}

# 1. Import throughput.
python3 scripts/gen-workers.py "$workers" "$dir/workers.csv"
start_sandbox import
mkdir "$dir/import"
sed "s|^kind = \"sandbox\"|kind = \"sandbox\"\nurl = \"$sandbox_url\"|" examples/hrsync.toml > "$dir/import/hrsync.toml"
start=$(date +%s.%N)
"$bin" import --config "$dir/import/hrsync.toml" "$dir/workers.csv" --now 2026-12-01T09:00:00Z --format json > "$dir/import.json"
end=$(date +%s.%N)
python3 - "$dir/import.json" "$start" "$end" "$workers" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
elapsed = float(sys.argv[3]) - float(sys.argv[2])
n = int(sys.argv[4])
c = summary["counts"]
print(f"import: {n} workers in {elapsed:.1f} s = {n / elapsed:,.0f} workers/s "
      f"(joiners {c['joiners']}, directory operations {c['directory_operations']}, timers {c['timers_set']}, failed {len(summary['failed'])})")
PY

# 2. Webhook-to-account latency.
start_sandbox serve
mkdir "$dir/serve"
export HRSYNC_BENCH_SECRET="bench-secret-$RANDOM"
sed -e "s|^kind = \"sandbox\"|kind = \"sandbox\"\nurl = \"$sandbox_url\"|" \
    -e 's|^kind = "csv"|kind = "signed-json"\nwebhook_secret = { env = "HRSYNC_BENCH_SECRET" }|' examples/hrsync.toml \
  | python3 -c 'import re,sys; t=sys.stdin.read(); print(re.sub(r"(?ms)^(date_format|delimiter) = .*?$\n", "", re.sub(r"(?ms)^\[source\.hr\.columns\].*?(?=^# ----)", "", t)))' \
  > "$dir/serve/hrsync.toml"
"$bin" serve --config "$dir/serve/hrsync.toml" --listen 127.0.0.1:0 2> "$dir/serve.log" &
pids+=($!)
for _ in $(seq 100); do
  serve_url=$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$dir/serve.log")
  [ -n "$serve_url" ] && break
  sleep 0.1
done
[ -n "$serve_url" ] || { cat "$dir/serve.log"; exit 1; }
python3 - "$serve_url" "$sandbox_url" "$webhooks" <<'PY'
import hashlib, hmac, json, os, sys, time, urllib.parse, urllib.request
serve, sandbox, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
secret = os.environ["HRSYNC_BENCH_SECRET"].encode()
token = json.load(urllib.request.urlopen(urllib.request.Request(
    f"{sandbox}/bench/oauth2/v2.0/token",
    data=urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": "bench",
        "client_secret": "bench", "scope": "https://graph.microsoft.com/.default"}).encode())))["access_token"]

def visible(employee_id):
    query = urllib.parse.quote(f"employeeId eq '{employee_id}'")
    request = urllib.request.Request(f"{sandbox}/v1.0/users?$filter={query}&$select=id",
                                     headers={"Authorization": f"Bearer {token}"})
    return bool(json.load(urllib.request.urlopen(request))["value"])

latencies = []
for i in range(n):
    employee_id = str(900000 + i)
    body = json.dumps({"employee_id": employee_id, "given_name": "Bench", "family_name": f"Hire{i}",
                       "status": "active", "hire_date": "2024-01-08", "worker_type": "Employee",
                       "department": ["Engineering", "Sales", "Finance"][i % 3], "country": "GB"}).encode()
    timestamp = str(int(time.time()))
    signature = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(f"{serve}/webhooks/hr", data=body, headers={
        "Content-Type": "application/json", "X-Hrsync-Timestamp": timestamp,
        "X-Hrsync-Signature": f"v1={signature}", "X-Hrsync-Delivery": f"bench-{i}"})
    sent = time.perf_counter()
    status = urllib.request.urlopen(request).status
    assert status == 202, status
    while not visible(employee_id):
        time.sleep(0.002)
    latencies.append(time.perf_counter() - sent)
latencies.sort()
pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
print(f"webhook -> account: {n} new hires, p50 {pick(0.50):.0f} ms, p99 {pick(0.99):.0f} ms, max {latencies[-1] * 1000:.0f} ms")
PY
