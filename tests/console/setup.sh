#!/usr/bin/env bash
# Installs what the console's browser tests need; safe to run again.
#  - Debian's Chromium (playwright-core drives it; Playwright's own browser
#    downloads are not used, so nothing comes from outside the package
#    registries);
#  - playwright-core, pinned by package-lock.json, into tests/console/node_modules.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "== installing nodejs and npm (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# npm ci is skipped when node_modules already holds the locked version, so a
# second run costs nothing (and needs no network).
want=$(node -p "require('./package-lock.json').packages['node_modules/playwright-core'].version")
have=$(node -p "try { require('./node_modules/playwright-core/package.json').version } catch { '' }")
if [ "$want" != "$have" ]; then
  echo "== npm ci (playwright-core $want)"
  # No browser download: we use /usr/bin/chromium.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi
echo "console e2e: chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'), playwright-core $want"
