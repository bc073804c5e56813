#!/usr/bin/env bash
# Runs the independent Graph conformance probe (tests/conformance/graph_conformance.py) against
# the already-built `target/debug/hrsync sandbox`, on a free loopback port, with a client secret,
# a seeded group and a seeded SKU with free units. Exits with the probe's status.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${HRSYNC_BIN:-target/debug/hrsync}"
probe="tests/conformance/graph_conformance.py"
command -v python3 >/dev/null || {
  echo "graph-conformance: python3 not found: install Python 3 (e.g. apt-get install python3); the probe uses only its standard library" >&2
  exit 1
}
[[ -x "$bin" ]] || {
  echo "graph-conformance: $bin not found: build it first with 'cargo build -p hrsync' (scripts/test.sh builds it in its cargo test step)" >&2
  exit 1
}

secret="conformance-$RANDOM-$RANDOM"
group="8c3f9f5e-1b7a-4d7e-9a55-3f1f4a0c2b11"
sku="05e9a617-0261-4cee-bb44-138d3ef5d965"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
url="http://127.0.0.1:$port"
log="$(mktemp)"

"$bin" sandbox --listen "127.0.0.1:$port" --client-secret "$secret" \
  --group "$group=Conformance" --sku "$sku=SPE_E3@25" >"$log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT

# Ready when it answers (any HTTP status) on its stats endpoint; at most 30 s.
ready=0
for _ in $(seq 1 150); do
  if ! kill -0 "$pid" 2>/dev/null; then
    break
  fi
  if python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url/sandbox/stats" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.2
done
if [[ "$ready" != 1 ]]; then
  echo "graph-conformance: the sandbox did not start on $url:" >&2
  cat "$log" >&2
  exit 1
fi

status=0
python3 "$probe" --base-url "$url" --authority "$url" --tenant conformance \
  --client-id 11111111-2222-3333-4444-555555555555 --client-secret "$secret" \
  --domain acme.example --group "$group" --sku "$sku" || status=$?
exit "$status"
