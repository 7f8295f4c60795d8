#!/usr/bin/env bash
# Installs what the Redis tests (tests/e2e/redis_server.rs, store_redis,
# fleet_store) need; safe to run again:
#  - Debian's `redis-server`, with apt-get (needs root), when `redis-server`
#    is not on PATH. The tests start their own servers on free loopback ports
#    with temporary directories; nothing here starts or configures one.
#
# Says what it will install before installing it; with --plan it only says.
# Only builtins run before an install step (besides `id` and `redis-server`
# itself), so a PATH without redis-server is enough to see the install branch.
set -euo pipefail

plan_only=false
case "${1:-}" in
  --plan) plan_only=true ;;
  "") ;;
  *) echo "usage: $0 [--plan]" >&2; exit 2 ;;
esac

need_redis=false
command -v redis-server >/dev/null 2>&1 || need_redis=true

# The version word of `redis-server --version` ("Redis server v=7.0.15 ...").
redis_version() {
  local words
  read -r -a words < <(redis-server --version 2>/dev/null || true)
  echo "${words[2]:-unknown version}"
}

# What is there and what will be installed, before anything is.
echo "redis e2e setup:"
if $need_redis; then
  echo "  - redis-server: will install (apt-get install redis-server; needs root)"
else
  echo "  - redis-server: present ($(command -v redis-server), $(redis_version))"
fi
if $plan_only; then
  echo "redis e2e setup: --plan: nothing installed"
  exit 0
fi

if $need_redis; then
  if [ "$(id -u)" != 0 ]; then
    echo "redis e2e setup: redis-server is not on PATH and installing it needs root:" >&2
    echo "  run \`sudo bash $0\` or \`sudo apt-get install redis-server\`" >&2
    exit 1
  fi
  echo "== installing redis-server (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # apt-get update only when needed: when the package lists do not know the
  # package, or know a version the mirror no longer has (the install fails).
  if ! apt-cache show redis-server >/dev/null 2>&1; then
    apt-get update -qq
  fi
  if ! apt-get install -y -qq --no-install-recommends redis-server >/dev/null; then
    echo "== apt-get install failed; updating the package lists and retrying"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  fi
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis e2e setup: apt-get installed redis-server but it is not on PATH ($PATH)" >&2
    exit 1
  fi
fi
echo "redis e2e: redis-server $(redis_version) at $(command -v redis-server)"
