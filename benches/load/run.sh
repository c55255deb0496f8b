#!/usr/bin/env bash
# make bench-load: portcullis beside bare Pingora, under the same load, in one run.
#
# On loopback: an nginx backend answering a small JSON body; bare Pingora (examples/
# bare_pingora.rs, a pass-through on the same Pingora version); portcullis with the verified-
# token cache on (steady token: cache hits) and off (every request verifies RS256). Each proxy
# runs one worker pinned to CPU 1, which it shares with the backend; wrk runs pinned to CPU 0.
# Every request is GET /orders/42 with the same token. Prints req/s, p50, p99 and the proxy's CPU
# µs per request (from /proc), and the ratio to bare Pingora. Bounded in time; stops only what it
# started. Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Wait (bounded) until something accepts on a port.
wait_port() {
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  exit 1
}

cargo build --release --quiet --locked --bin portcullis --example bare_pingora --example bench_token
bin=$ROOT/target/release

# The backend.
backend=$(free_port)
mkdir -p "$work/nginx/logs"
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx; uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  server {
    listen 127.0.0.1:$backend;
    location / { default_type application/json; return 200 '{"id":42,"status":"shipped"}'; }
  }
}
EOF
taskset -c 1 nginx -p "$work/nginx" -c "$work/nginx.conf" -g 'daemon off;' &
pids+=($!)
wait_port "$backend"

# portcullis' configuration: the demo issuer, one protected route, the cache on or off.
gateway_config() { # port admin cache
  cat >"$work/gateway-$3.yaml" <<EOF
listeners: [{ name: http, address: "127.0.0.1:$1" }]
issuers:
  - id: demo
    issuer: "https://demo.portcullis.local"
    jwks_file: "$ROOT/deploy/demo/jwks.json"
    audiences: ["orders-api"]
    algorithms: [RS256]
upstreams: [{ id: backend, url: "http://127.0.0.1:$backend" }]
admin: { address: "127.0.0.1:$2" }
auth_cache: { enabled: $3 }
routes:
  - id: orders
    match: { path_prefix: /orders, methods: [GET, HEAD] }
    upstream: backend
    auth: { scopes: { all_of: ["read:orders"] } }
EOF
  echo "$work/gateway-$3.yaml"
}

token=$("$bin/examples/bench_token" "$(gateway_config 1 2 true)" deploy/demo/demo-signing-key.pem demo-rsa-1)

# Ticks of CPU (user + system) a process used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

results=()
# run NAME PID PORT: load one proxy, print its row.
run() {
  local name=$1 pid=$2 port=$3
  wait_port "$port"
  # Warm up (connections, caches), then measure.
  taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d2s -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port/orders/42" >/dev/null
  local before after out
  before=$(cpu_ticks "$pid")
  out=$(timeout $((DURATION + 30)) taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency \
    -H "Authorization: Bearer $token" "http://127.0.0.1:$port/orders/42")
  after=$(cpu_ticks "$pid")
  local requests rps p50 p99 errors
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  # Every failed request counts: non-2xx answers, and connect/read/write/timeout errors.
  errors=$(awk '/Non-2xx or 3xx responses/ {n += $5}
    /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10}
    END {print n + 0}' <<<"$out")
  local cpu_us
  cpu_us=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
    'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  results+=("$name|$rps|$p50|$p99|$cpu_us|$errors")
}

bare=$(free_port)
taskset -c 1 "$bin/examples/bare_pingora" "127.0.0.1:$bare" "127.0.0.1:$backend" 2>"$work/bare.log" &
pids+=($!)
run "bare Pingora pass-through (no auth)" $! "$bare"

for cache in true false; do
  port=$(free_port)
  config=$(gateway_config "$port" "$(free_port)" "$cache")
  taskset -c 1 "$bin/portcullis" --log-format json run -c "$config" 2>"$work/portcullis-$cache.log" &
  pids+=($!)
  case $cache in
    true) name="portcullis, steady token (cache hits)" ;;
    false) name="portcullis, cache off (RS256 every request)" ;;
  esac
  run "$name" $! "$port"
  kill "${pids[-1]}"
  wait "${pids[-1]}" 2>/dev/null || true
done

base=$(cut -d'|' -f2 <<<"${results[0]}")
echo
echo "$(nproc) CPUs: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); ${DURATION}s, $CONNECTIONS connections"
echo
echo "| target | req/s | ratio to bare | p50 | p99 | proxy CPU µs/req | failed requests |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for row in "${results[@]}"; do
  IFS='|' read -r name rps p50 p99 cpu errors <<<"$row"
  ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
  echo "| $name | $rps | ${ratio}× | $p50 | $p99 | $cpu | $errors |"
done
