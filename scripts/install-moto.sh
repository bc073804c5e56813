#!/usr/bin/env bash
# Installs the local AWS emulator the AWS adapters' tests run against: moto's server, pinned,
# into .venv-moto/ at the repository root. Idempotent; the tests start it themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="5.2.5"
venv=".venv-moto"
if [ -x "$venv/bin/moto_server" ] && "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    exit 0
fi
command -v python3 >/dev/null || { echo "python3 not found: it is needed to install moto (the local AWS emulator)" >&2; exit 1; }
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
"$venv/bin/moto_server" --help >/dev/null
echo "moto $MOTO_VERSION installed in $venv"
