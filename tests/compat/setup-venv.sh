#!/usr/bin/env bash
# Creates .venv at the repository root with the official band-sdk installed.
# Idempotent: does nothing when the pinned requirements are already satisfied.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.venv"
req="$here/requirements.txt"
stamp="$venv/.compat-requirements.sha256"

want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
    && "$venv/bin/python" -c 'import band' 2>/dev/null; then
    echo "setup-venv: $venv already has the compat requirements"
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
