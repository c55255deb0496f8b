#!/usr/bin/env bash
# Installs what the differential echo backends need (idempotent, quick when
# everything is already there). Generated files go under target/differential/.
#
#   tests/differential/setup.sh        # from any directory
#
# Needs: apt (golang-go, php-cli), python3 with venv + pip, node + npm.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/target/differential"
mkdir -p "$out"
cd "$root"

log() { echo "setup.sh: $*" >&2; }

# Concurrent callers (parallel test binaries) wait for each other.
exec 9>"$out/.setup.lock"
flock 9

# Each step keeps a stamp: a hash of its inputs (pinned files + tool version)
# and re-runs only when the stamp differs or its output is missing.
python="${PYTHON:-python3}"

# ---- 1. Debian packages -----------------------------------------------------
missing=()
for pkg in golang-go php-cli; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
# Normally already there (pyenv / preinstalled Node); Debian's as a fallback.
"$python" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# ---- 2. Python venv: gunicorn + Flask --------------------------------------
venv="$out/venv"
req="$here/flask/requirements.txt"
want="$(printf '%s\n' "$("$python" -c 'import sys; print(sys.version)')" | cat - "$req" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$want" ] || ! "$venv/bin/python" -c '' 2>/dev/null; then
    log "creating $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    PIP_CACHE_DIR="$out/cache/pip" PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$venv/bin/pip" install -q --no-input -r "$req" >&2
    echo "$want" >"$venv/.stamp"
fi

# ---- 3. Node: express + method-override ------------------------------------
node_dir="$out/node"
want="$(printf '%s\n' "$(node --version)" | cat - "$here/node/package.json" "$here/node/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$node_dir/.stamp" 2>/dev/null)" != "$want" ] || [ ! -d "$node_dir/node_modules" ]; then
    log "npm ci in $node_dir"
    rm -rf "$node_dir"
    mkdir -p "$node_dir"
    cp "$here/node/package.json" "$here/node/package-lock.json" "$node_dir/"
    (cd "$node_dir" && npm_config_cache="$out/cache/npm" npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" >"$node_dir/.stamp"
fi

# ---- 4. Go: stdlib-only echo server, Debian toolchain -----------------------
export GOCACHE="$out/cache/go-build" GOPATH="$out/gopath" GOTOOLCHAIN=local GOPROXY=off GOFLAGS= GO111MODULE=on CGO_ENABLED=0
go=/usr/bin/go
bin="$out/goecho"
want="$(printf '%s\n' "$("$go" version)" | cat - "$here/go/go.mod" "$here/go/main.go" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$out/goecho.stamp" 2>/dev/null)" != "$want" ] || [ ! -x "$bin" ]; then
    log "go build -> $bin"
    (cd "$here/go" && "$go" build -trimpath -o "$bin.tmp" . && mv "$bin.tmp" "$bin")
    echo "$want" >"$out/goecho.stamp"
fi

# ---- 5. PHP: php-cli only ---------------------------------------------------
mkdir -p "$out/php-docroot"

log "ready ($out)"
