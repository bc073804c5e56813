#!/usr/bin/env bash
# Checks the AWS SAM template (infra/template.yaml):
#   1. cfn-lint      (schema, intrinsic functions, resource limits)
#   2. checkov       (security policies; every skip is justified in the resource's Metadata)
#   3. infra/tests/check_limits.py  (what both miss: FIFO batch limits, redrive policies,
#      visibility timeout >= 6x the consumer's timeout, ReportBatchItemFailures, ...), and its
#      self-test (each check must catch the break it exists for).
# Exits non-zero on any finding. The tools are pinned and installed from PyPI into virtualenvs
# under .venv-infra/ (one per tool: their dependency pins conflict) the first time, and again
# only when a pin changes; after that the script needs no network.
#
# Usage: scripts/check-infra.sh            (from any directory)
#        PYTHON=python3.12 scripts/check-infra.sh   (the Python that creates the virtualenvs)
set -euo pipefail
cd "$(dirname "$0")/.."

CFN_LINT_VERSION=1.58.0
CHECKOV_VERSION=3.3.30
TEMPLATE=infra/template.yaml
VENVS=.venv-infra
PYTHON="${PYTHON:-python3}"

command -v "$PYTHON" >/dev/null || { echo "check-infra: $PYTHON not found (Python >= 3.9 with venv is needed)" >&2; exit 1; }

# venv NAME PACKAGE==VERSION: create .venv-infra/NAME and install the package with every
# dependency at the version recorded in infra/tests/NAME.lock.txt.
venv() {
    local name=$1 spec=$2 dir="$VENVS/$1" lock="infra/tests/$1.lock.txt" stamp want
    want="$spec $(cksum < "$lock")"
    stamp="$dir/.hrsync-installed"
    if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return
    fi
    echo "== installing $spec into $dir (pinned by $lock)"
    [[ -x "$dir/bin/python" ]] || "$PYTHON" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$spec" -c "$lock"
    printf '%s' "$want" > "$stamp"
}

venv cfn-lint "cfn-lint==$CFN_LINT_VERSION"
venv checkov "checkov==$CHECKOV_VERSION"

status=0

echo "== cfn-lint $CFN_LINT_VERSION $TEMPLATE"
if "$VENVS/cfn-lint/bin/cfn-lint" "$TEMPLATE"; then
    echo "cfn-lint: no findings"
else
    echo "cfn-lint: FAILED (findings above)"
    status=1
fi

echo "== checkov $CHECKOV_VERSION $TEMPLATE"
# --skip-download: no Prisma Cloud / Bridgecrew platform; the check definitions ship in the wheel.
if "$VENVS/checkov/bin/checkov" -f "$TEMPLATE" --framework cloudformation --compact --quiet --skip-download; then
    :
else
    echo "checkov: FAILED (failed checks above)"
    status=1
fi

echo "== infra/tests/check_limits.py $TEMPLATE"
"$VENVS/cfn-lint/bin/python" infra/tests/check_limits.py "$TEMPLATE" || status=1
"$VENVS/cfn-lint/bin/python" infra/tests/check_limits.py --self-test "$TEMPLATE" || status=1

if [[ $status -eq 0 ]]; then
    echo "check-infra: OK"
else
    echo "check-infra: FAILED" >&2
fi
exit $status
