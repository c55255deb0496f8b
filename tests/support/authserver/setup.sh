#!/usr/bin/env bash
# Installs the test authorization server's packages (oidc-provider, pinned by package-lock.json)
# into target/authserver/ (idempotent; quick when already there). Needs node >= 20 and npm.
#
#   tests/support/authserver/setup.sh        # from any directory
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="$root/target/authserver"
mkdir -p "$out"

log() { echo "authserver/setup.sh: $*" >&2; }

# Concurrent callers wait for each other.
exec 9>"$out/.setup.lock"
flock 9

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "apt-get install nodejs npm"
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends nodejs npm >&2
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
    log "node $(node --version) is too old: oidc-provider 9 needs node 20 or later"
    exit 1
fi

want="$(printf '%s\n' "$(node --version)" | cat - "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$out/.stamp" 2>/dev/null)" != "$want" ] || [ ! -d "$out/node_modules" ]; then
    log "npm ci in $out"
    rm -rf "$out/node_modules"
    cp "$here/package.json" "$here/package-lock.json" "$out/"
    (cd "$out" && npm_config_cache="$out/cache/npm" npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" >"$out/.stamp"
fi
cp "$here/server.mjs" "$out/server.mjs"
log "ready ($out)"
