#!/usr/bin/env bash
# Installs what the console's browser test (tests/e2e/console_browser.rs,
# console_in_headless_chromium) needs; safe to run again:
#  - Debian's Chromium at /usr/bin/chromium (playwright-core drives it;
#    Playwright's own browser downloads are not used, so nothing comes from
#    outside the package registries), with apt-get (needs root);
#  - node and npm, with apt-get, when missing;
#  - playwright-core, pinned by package-lock.json, into
#    tests/console/node_modules (npm ci, from the npm registry).
#
# Says what it will install before installing it; with --plan it only says.
set -euo pipefail
cd "$(dirname "$0")"

plan_only=false
case "${1:-}" in
  --plan) plan_only=true ;;
  "") ;;
  *) echo "usage: $0 [--plan]" >&2; exit 2 ;;
esac

# The versions are read without node, which may be missing.
version_in() { # file, key line: the "version" after the key
  { grep -A3 "$2" "$1" 2>/dev/null || true; } | sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' | head -n1
}
want=$(version_in package-lock.json '"node_modules/playwright-core"')
have=""
if [ -f node_modules/playwright-core/package.json ]; then
  have=$(sed -n 's/^  "version": *"\([^"]*\)".*/\1/p' node_modules/playwright-core/package.json | head -n1)
fi

need_chromium=false
need_node=false
need_npm_ci=false
[ -x /usr/bin/chromium ] || need_chromium=true
{ command -v node && command -v npm; } >/dev/null 2>&1 || need_node=true
[ "$want" = "$have" ] || need_npm_ci=true

# What is there and what will be installed, before anything is.
echo "console e2e setup:"
if $need_chromium; then
  echo "  - chromium: will install (apt-get install chromium; needs root)"
else
  echo "  - chromium: present ($(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'))"
fi
if $need_node; then
  echo "  - node and npm: will install (apt-get install nodejs npm; needs root)"
else
  echo "  - node and npm: present (node $(node --version))"
fi
if $need_npm_ci; then
  echo "  - playwright-core $want: will install (npm ci into tests/console/node_modules, from the npm registry; no browser download)"
else
  echo "  - playwright-core $want: present"
fi
if $plan_only; then
  echo "console e2e setup: --plan: nothing installed"
  exit 0
fi

if $need_chromium; then
  echo "== installing chromium (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if $need_node; then
  echo "== installing nodejs and npm (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# npm ci is skipped when node_modules already holds the locked version, so a
# second run costs nothing (and needs no network).
if $need_npm_ci; then
  echo "== npm ci (playwright-core $want)"
  # No browser download: we use /usr/bin/chromium.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi
echo "console e2e: chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'), playwright-core $want"
