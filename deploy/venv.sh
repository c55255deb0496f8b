# Sourced by deploy/lint.sh and deploy/kubernetes/check.sh: `ensure_venv DIR PINS` makes DIR a
# Python venv holding exactly PINS (pinned PyPI packages, one per word), rebuilt only when the
# pins or the Python version change, under a lock shared by every venv in target/deploy-tools.
ensure_venv() {
  local venv="$1" pins="$2" want
  want="$(printf '%s\n' "$pins" "$(python3 -c 'import sys; print(sys.version)')" | sha256sum | cut -d' ' -f1)"
  mkdir -p "$(dirname "$venv")"
  exec 9>"$(dirname "$venv")/.lock"
  flock 9
  if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$want" ] || ! "$venv/bin/python" -c '' 2>/dev/null; then
    echo "installing $pins into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086 # one word per pin
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install -q --no-input $pins >&2
    echo "$want" >"$venv/.stamp"
  fi
  flock -u 9
}
