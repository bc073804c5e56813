#!/usr/bin/env bash
# Builds the four Lambda functions as SAM deploys them (bootstrap binaries and zips, by
# cargo-lambda with zig as the linker), pinned, and reports each one's size. x86_64 always;
# arm64 (the template's default) where the aarch64 std target is installed
# (`rustup target add aarch64-unknown-linux-gnu`).
#
# Output: target/lambda/<function>/bootstrap[.zip] (x86_64) and
# target/lambda-arm64/<function>/... (arm64), and target/lambda/sizes.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LAMBDA_VERSION="1.9.2"
ZIGLANG_VERSION="0.17.1"
venv=".venv-lambda"
FUNCTIONS=(intake mapping entra writeback)

if ! "$venv/bin/cargo-lambda" --version 2>/dev/null | grep -q "$CARGO_LAMBDA_VERSION" \
    || ! "$venv/bin/python" -c "import ziglang, importlib.metadata as m, sys; sys.exit(m.version('ziglang') != '$ZIGLANG_VERSION')" 2>/dev/null; then
    command -v python3 >/dev/null || { echo "python3 not found: it is needed to install cargo-lambda and zig" >&2; exit 1; }
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION"
fi
export PATH="$PWD/$venv/bin:$PATH"
cargo lambda --version

build() { # build <output folder> [--arm64]
    local out="$1"
    shift
    local packages=()
    for f in "${FUNCTIONS[@]}"; do packages+=(--package "$f"); done
    cargo lambda build --release --locked "$@" "${packages[@]}" --lambda-dir "$out"
    cargo lambda build --release --locked "$@" "${packages[@]}" --lambda-dir "$out" --output-format zip
}

targets=("target/lambda:x86_64")
build target/lambda --x86-64
if rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    build target/lambda-arm64 --arm64
    targets+=("target/lambda-arm64:arm64")
else
    echo "arm64: skipped, the aarch64-unknown-linux-gnu std target is not installed (rustup target add aarch64-unknown-linux-gnu)"
fi

{
    printf '%-10s %-8s %12s %12s\n' function arch binary zip
    for entry in "${targets[@]}"; do
        dir="${entry%%:*}" arch="${entry##*:}"
        for f in "${FUNCTIONS[@]}"; do
            printf '%-10s %-8s %12s %12s\n' "$f" "$arch" \
                "$(stat -c %s "$dir/$f/bootstrap")" "$(stat -c %s "$dir/$f/bootstrap.zip")"
        done
    done
} | tee target/lambda/sizes.txt
