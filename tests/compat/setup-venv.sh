#!/usr/bin/env bash
# Creates a Python venv with the official band-sdk installed from PyPI, for
# the SDK compatibility test (tests/e2e/sdk_compat.rs) and `switchboard bench`
# (tests/e2e/bench_cli.rs). The venv is .venv at the repository root, or
# $SWITCHBOARD_VENV. Idempotent: does nothing when the pinned requirements
# (tests/compat/requirements.txt) are already satisfied.
#
# Says what it will install before installing it; with --plan it only says.
set -euo pipefail

plan_only=false
case "${1:-}" in
    --plan) plan_only=true ;;
    "") ;;
    *) echo "usage: $0 [--plan]" >&2; exit 2 ;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${SWITCHBOARD_VENV:-$root/.venv}"
req="$here/requirements.txt"
stamp="$venv/.compat-requirements.sha256"

want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
    && "$venv/bin/python" -c 'import band' 2>/dev/null; then
    echo "setup-venv: $venv already has the compat requirements"
    exit 0
fi

packages="$(grep -v '^[[:space:]]*#' "$req" | grep -v '^[[:space:]]*$' | tr '\n' ' ')"
if [[ -x "$venv/bin/python" ]]; then
    echo "setup-venv: will install into the venv $venv, with pip from PyPI: $packages"
else
    echo "setup-venv: will create the venv $venv (python3 -m venv) and install into it, with pip from PyPI: $packages"
fi
if $plan_only; then
    echo "setup-venv: --plan: nothing installed"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup-venv: creating $venv"
    python3 -m venv "$venv"
fi
echo "setup-venv: installing $req"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
"$venv/bin/python" -c 'import band' # fail loudly if the install is unusable
echo "$want" >"$stamp"
echo "setup-venv: done"
