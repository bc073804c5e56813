#!/usr/bin/env bash
# The one command that runs every check and test; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (the toolchain is pinned in rust-toolchain.toml)" >&2; exit 1; }

echo "== install moto (the local AWS emulator the AWS adapters' tests start)"
scripts/install-moto.sh

echo "== infra: cfn-lint, checkov and the limits they miss (infra/template.yaml)"
scripts/check-infra.sh

echo "== the Lambda functions, built as SAM deploys them (pinned cargo-lambda + zig)"
scripts/build-lambdas.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary, the last often a
# doc-test binary with nothing in it).
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
echo "== Graph conformance probe against hrsync sandbox" && scripts/graph-conformance.sh
