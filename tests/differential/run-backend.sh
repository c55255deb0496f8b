#!/usr/bin/env bash
# Runs one differential echo backend in the foreground on 127.0.0.1 with a port
# the OS chooses, and prints exactly one line "LISTENING <port>" on stdout once
# the port accepts TCP connections. Everything else goes to stderr.
#
#   tests/differential/run-backend.sh flask|express|go|php
#
# Run tests/differential/setup.sh first. Stop it by killing its process group.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/target/differential"

need() {
    [ -e "$1" ] || { echo "run-backend.sh: $1 missing: run tests/differential/setup.sh" >&2; exit 2; }
}

case "${1:-}" in
flask)
    need "$out/venv/bin/gunicorn"
    # gunicorn.conf.py binds 127.0.0.1:0, logs to stderr only, and prints
    # LISTENING from the worker once the app is loaded.
    export PYTHONPYCACHEPREFIX="$out/cache/pycache" PYTHONUNBUFFERED=1
    exec "$out/venv/bin/gunicorn" --config "$here/flask/gunicorn.conf.py" \
        --chdir "$here/flask" app:app
    ;;
express)
    need "$out/node/node_modules/express"
    export NODE_PATH="$out/node/node_modules" NODE_ENV=production
    exec node "$here/node/app.js"
    ;;
go)
    need "$out/goecho"
    exec "$out/goecho"
    ;;
php)
    command -v php >/dev/null || need /usr/bin/php
    mkdir -p "$out/php-docroot"
    # `php -S 127.0.0.1:0` binds an OS-chosen port and, once listening, logs
    # "... Development Server (http://127.0.0.1:PORT) started" on stderr.
    # announce() copies php's log to stderr and turns that line into LISTENING.
    announce() {
        local line port announced=
        while IFS= read -r line; do
            printf '%s\n' "$line" >&2
            if [ -z "$announced" ] &&
                [[ $line =~ Development\ Server\ \(http://127\.0\.0\.1:([0-9]+)\)\ started ]]; then
                port="${BASH_REMATCH[1]}"
                # Belt and braces: only announce once a connect succeeds.
                for _ in $(seq 100); do
                    if (exec 4<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                        echo "LISTENING $port" >&3
                        announced=1
                        break
                    fi
                    sleep 0.05
                done
                [ -n "$announced" ] || echo "run-backend.sh: php never accepted on $port" >&2
            fi
        done
    }
    # fd 3 is this script's stdout: php's own stdout and stderr both go to stderr.
    exec 3>&1
    php -d display_errors=stderr -S 127.0.0.1:0 -t "$out/php-docroot" "$here/php/router.php" \
        >&2 2> >(announce) &
    php_pid=$!
    # Killing just this script (not its group) must not leave php behind.
    trap 'kill "$php_pid" 2>/dev/null || true' EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT
    trap 'exit 129' HUP
    wait "$php_pid"
    ;;
*)
    echo "usage: $0 flask|express|go|php" >&2
    exit 2
    ;;
esac
