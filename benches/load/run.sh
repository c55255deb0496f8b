#!/usr/bin/env bash
# make bench-load: portcullis beside bare Pingora, under the same load, in one run.
#
# On loopback: an nginx backend answering a small JSON body; bare Pingora (examples/
# bare_pingora.rs, a pass-through on the same Pingora version, plain and TLS with ALPN h2);
# portcullis with the same listeners and the verified-token cache on, then a second portcullis
# with the cache off. Each proxy runs one worker pinned to CPU 1, which it shares with the
# backend; the load generator runs pinned to CPU 0. Every request is GET /orders/42.
#
# Targets, in ROUNDS rounds (default 2), each target in turn:
#   HTTP/1.1 plain (wrk): bare; portcullis steady token (cache hits); cache off (RS256 every
#     request);
#   HTTPS, HTTP/1.1 (wrk): bare; portcullis steady token;
#   HTTP/2 over TLS (h2load): bare; portcullis steady token;
#   decision mode (wrk): the subrequest nginx's auth_request sends (deploy/nginx), steady token,
#     against the decision listener of the cache-on portcullis: no upstream, so compare its
#     CPU per request with the proxied steady token's;
#   rate limits (wrk): a third portcullis, cache on, with two local limits on the route (by
#     ip, before authentication; by client_id, after) too generous ever to refuse: what
#     checking them costs, beside the steady token's row;
# then once: unique tokens (every request a token never seen, pre-minted, cache on).
# Prints the means of req/s, p50, p99, the proxy's CPU µs per request (from /proc), failed requests, and the
# ratio to bare Pingora on the same protocol; then the RSS growth of the unique-token run per
# cached token. Bounded in time; stops only what it started. Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-32}
# Enough for the unique-token run at ~10,000 req/s; signing takes ~20 s per 50,000 on 2 cores.
UNIQUE_TOKENS=${UNIQUE_TOKENS:-120000}

work=$(mktemp -d)
pids=()
cleanup() {
  # SIGINT: Pingora's fast shutdown (SIGTERM would wait out its grace period); nginx too.
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
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

# A self-signed certificate for the HTTPS and HTTP/2 targets (the clients do not verify it).
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null

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

# portcullis' configuration: the demo issuer, one protected route, a plain and a TLS listener,
# the cache on or off.
gateway_config() { # port tls_port admin cache [decision_port] [limits]
  local file="$work/gateway-$4${6:+-limits}.yaml"
  cat >"$file" <<EOF
listeners:
  - { name: http, address: "127.0.0.1:$1" }
  - name: https
    address: "127.0.0.1:$2"
    tls: { certificates: [{ cert_file: "$work/tls.crt", key_file: "$work/tls.key" }] }
issuers:
  - id: demo
    issuer: "https://demo.portcullis.local"
    jwks_file: "$ROOT/deploy/demo/jwks.json"
    audiences: ["orders-api"]
    algorithms: [RS256]
upstreams: [{ id: backend, url: "http://127.0.0.1:$backend" }]
admin: { address: "127.0.0.1:$3" }
auth_cache: { enabled: $4 }
${5:+decision: { address: \"127.0.0.1:$5\", protocol: nginx, trusted_proxies: [127.0.0.1] \}}
routes:
  - id: orders
    match: { path_prefix: /orders, methods: [GET, HEAD] }
    upstream: backend
    auth: { scopes: { all_of: ["read:orders"] } }
EOF
  if [ -n "${6:-}" ]; then
    cat >>"$file" <<EOF
rate_limits:
  default:
    - { key: ip, rate: 1000000/s, burst: 1000000 }
    - { key: client_id, rate: 1000000/s, burst: 1000000 }
EOF
  fi
  echo "$file"
}

config=$(gateway_config 1 2 3 true)
token=$("$bin/examples/bench_token" "$config" deploy/demo/demo-signing-key.pem demo-rsa-1)
echo "signing $UNIQUE_TOKENS unique tokens..."
"$bin/examples/bench_token" "$config" deploy/demo/demo-signing-key.pem demo-rsa-1 "$UNIQUE_TOKENS" \
  >"$work/tokens.txt"
# wrk script: each request carries the next token of the file.
cat >"$work/unique.lua" <<'EOF'
local tokens, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
end
function request()
  i = i + 1
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. tokens[(i - 1) % #tokens + 1] })
end
EOF

# Ticks of CPU (user + system) a process used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
metric() { # admin_port name{labels}
  curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'
}

# wrk's latency figure in ms (it prints us, ms or s).
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
    else print v }'
}

results=()
# run NAME PID BASE KIND URL: load one proxy, record its row. KIND: wrk, unique (wrk with a
# fresh token per request, no warm-up so no token repeats), h2 (h2load). BASE names the row
# whose req/s the ratio is taken against.
run() {
  local name=$1 pid=$2 base=$3 kind=$4 url=$5
  local auth="Authorization: Bearer $token"
  # Warm up (connections, caches) before the CPU count starts; not for unique tokens, so that
  # no token repeats.
  case $kind in
    wrk) taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d2s -H "$auth" "$url" >/dev/null ;;
    decision) taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d2s -H "$auth" "${described[@]}" "$url" \
      >/dev/null ;;
    h2) taskset -c 0 h2load -t1 -c8 -m4 -D 2 -H "$auth" "$url" >/dev/null ;;
  esac
  # h2load appends to its log file: one file per run.
  rm -f "$work/h2.log"
  local before after out requests rps p50 p99 errors
  before=$(cpu_ticks "$pid")
  case $kind in
    wrk)
      out=$(timeout $((DURATION + 30)) taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" \
        --latency -H "$auth" "$url") ;;
    decision)
      out=$(timeout $((DURATION + 30)) taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" \
        --latency -H "$auth" "${described[@]}" "$url") ;;
    unique)
      out=$(timeout $((DURATION + 30)) taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" \
        --latency -s "$work/unique.lua" "$url" -- "$work/tokens.txt") ;;
    h2)
      # 8 connections of 4 streams: as many requests in flight as the wrk targets.
      out=$(timeout $((DURATION + 30)) taskset -c 0 h2load -t1 -c8 -m4 \
        -D "$DURATION" --log-file="$work/h2.log" -H "$auth" "$url") ;;
  esac
  after=$(cpu_ticks "$pid")
  case $kind in
    wrk | unique | decision)
      requests=$(awk '/requests in/ {print $1}' <<<"$out")
      rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
      p50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
      p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
      # Every failed request counts: non-2xx answers, and connect/read/write/timeout errors.
      errors=$(awk '/Non-2xx or 3xx responses/ {n += $5}
        /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10}
        END {print n + 0}' <<<"$out") ;;
    h2)
      requests=$(awk '/^requests:/ {print $2}' <<<"$out")
      rps=$(awk '/^finished in/ {gsub(",", ""); printf "%.0f", $4}' <<<"$out")
      # Failed, errored and timed-out requests, and any answer that is not 2xx.
      errors=$(awk '/^requests:/ {n += $10 + $12 + $14}
        /^status codes:/ {gsub(",", ""); n += $5 + $7 + $9}
        END {print n + 0}' <<<"$out")
      # Per-request log: start time, status, µs to the end of the response.
      read -r p50 p99 < <(awk '{print $3}' "$work/h2.log" | sort -n | awk '{v[NR] = $1}
        END {printf "%.2f %.2f\n", v[int(NR * 0.50)] / 1000, v[int(NR * 0.99)] / 1000}') ;;
  esac
  if [ -z "$requests" ] || [ "$requests" = 0 ] || [ -z "$rps" ] || [ "$rps" = 0 ]; then
    echo "$name: no request completed; the load generator said:" >&2
    echo "$out" >&2
    exit 1
  fi
  local cpu_us
  cpu_us=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
    'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  results+=("$name|$base|$rps|$p50|$p99|$cpu_us|$errors")
}

bare=$(free_port)
bare_tls=$(free_port)
taskset -c 1 "$bin/examples/bare_pingora" "127.0.0.1:$bare" "127.0.0.1:$backend" \
  "127.0.0.1:$bare_tls" "$work/tls.crt" "$work/tls.key" 2>"$work/bare.log" &
bare_pid=$!
pids+=($bare_pid)

# portcullis with the cache on serves the steady, HTTPS, HTTP/2 and (last) unique-token loads;
# a second one has the cache off. Only the one under load uses CPU.
start_portcullis() { # cache [decision] [limits]: sets port, tls_port, admin, decision, pid
  port=$(free_port) tls_port=$(free_port) admin=$(free_port) decision=${2:+$(free_port)}
  local config
  config=$(gateway_config "$port" "$tls_port" "$admin" "$1" "$decision" "${3:-}")
  taskset -c 1 "$bin/portcullis" --log-format json run -c "$config" \
    2>"$work/portcullis-$1${3:+-limits}.log" &
  pid=$!
  pids+=($pid)
  wait_port "$port"
  wait_port "$tls_port"
}
start_portcullis false
off_port=$port off_pid=$pid
start_portcullis true "" limits
limits_port=$port limits_pid=$pid
start_portcullis true decision
on_port=$port on_tls=$tls_port on_admin=$admin on_pid=$pid on_decision=$decision
wait_port "$on_decision"
# What nginx's auth subrequest for GET /orders/42 carries besides the client's headers
# (deploy/nginx/auth_request.conf).
described=(-H "X-Original-URI: /orders/42" -H "X-Original-Method: GET" -H "X-Original-Host: 127.0.0.1")
wait_port "$bare"
wait_port "$bare_tls"

plain="bare Pingora, HTTP/1.1 (no auth)"
https="bare Pingora, HTTPS (no auth)"
h2="bare Pingora, HTTP/2 over TLS (no auth)"
# Rounds, each target in turn, so that a noisy moment on the machine does not hit one target
# only; every figure below is the mean over the rounds.
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS..."
  run "$plain" $bare_pid - wrk "http://127.0.0.1:$bare/orders/42"
  run "portcullis, steady token (cache hits)" $on_pid "$plain" wrk "http://127.0.0.1:$on_port/orders/42"
  run "portcullis, cache off (RS256 every request)" $off_pid "$plain" wrk \
    "http://127.0.0.1:$off_port/orders/42"
  run "$https" $bare_pid - wrk "https://127.0.0.1:$bare_tls/orders/42"
  run "portcullis, HTTPS, steady token" $on_pid "$https" wrk "https://127.0.0.1:$on_tls/orders/42"
  run "$h2" $bare_pid - h2 "https://127.0.0.1:$bare_tls/orders/42"
  run "portcullis, HTTP/2 over TLS, steady token" $on_pid "$h2" h2 \
    "https://127.0.0.1:$on_tls/orders/42"
  run "portcullis, decision (nginx auth subrequest), steady token" $on_pid \
    "portcullis, steady token (cache hits)" decision "http://127.0.0.1:$on_decision/_portcullis"
  run "portcullis, steady token, rate limits (ip + client_id)" $limits_pid \
    "portcullis, steady token (cache hits)" wrk "http://127.0.0.1:$limits_port/orders/42"
done

# Once: each token is new only once.
hits_before=$(metric "$on_admin" 'portcullis_token_cache_events_total{event="hit"}')
entries_before=$(metric "$on_admin" 'portcullis_token_cache_size{unit="entries"}')
rss_before=$(rss_kib $on_pid)
run "portcullis, unique tokens (RS256 every request, cache filling)" $on_pid "$plain" unique \
  "http://127.0.0.1:$on_port/orders/42"
rss_after=$(rss_kib $on_pid)
hits_after=$(metric "$on_admin" 'portcullis_token_cache_events_total{event="hit"}')
entries_after=$(metric "$on_admin" 'portcullis_token_cache_size{unit="entries"}')

echo
echo "$(nproc) CPUs: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); $ROUNDS round(s) of ${DURATION}s per target (unique tokens: one), $CONNECTIONS requests in flight; $(date -u +%F)"
echo
echo "| target | req/s | ratio to bare (same protocol) | p50 ms | p99 ms | proxy CPU µs/req | failed requests |"
echo "|---|---:|---:|---:|---:|---:|---:|"
# Means over the rounds, in first-seen order; failed requests are summed.
declare -A n sum_rps sum_p50 sum_p99 sum_cpu sum_err base_of
order=()
for row in "${results[@]}"; do
  IFS='|' read -r name base rps p50 p99 cpu errors <<<"$row"
  if [ -z "${n[$name]:-}" ]; then order+=("$name"); n[$name]=0; sum_rps[$name]=0
    sum_p50[$name]=0; sum_p99[$name]=0; sum_cpu[$name]=0; sum_err[$name]=0; fi
  base_of[$name]=$base
  n[$name]=$((n[$name] + 1))
  sum_rps[$name]=$(awk -v a="${sum_rps[$name]}" -v b="$rps" 'BEGIN {print a + b}')
  sum_p50[$name]=$(awk -v a="${sum_p50[$name]}" -v b="$p50" 'BEGIN {print a + b}')
  sum_p99[$name]=$(awk -v a="${sum_p99[$name]}" -v b="$p99" 'BEGIN {print a + b}')
  sum_cpu[$name]=$(awk -v a="${sum_cpu[$name]}" -v b="$cpu" 'BEGIN {print a + b}')
  sum_err[$name]=$((sum_err[$name] + errors))
done
mean() { awk -v s="$1" -v n="$2" -v f="$3" 'BEGIN { printf f, s / n }'; }
for name in "${order[@]}"; do
  rps=$(mean "${sum_rps[$name]}" "${n[$name]}" "%.0f")
  base=${base_of[$name]}
  if [ "$base" = - ]; then
    ratio="1.00×"
  else
    ratio=$(awk -v a="${sum_rps[$name]}" -v na="${n[$name]}" -v b="${sum_rps[$base]}" -v nb="${n[$base]}" \
      'BEGIN { printf "%.2f×", (a / na) / (b / nb) }')
  fi
  echo "| $name | $rps | $ratio | $(mean "${sum_p50[$name]}" "${n[$name]}" "%.2f") |" \
    "$(mean "${sum_p99[$name]}" "${n[$name]}" "%.2f") | $(mean "${sum_cpu[$name]}" "${n[$name]}" "%.1f") |" \
    "${sum_err[$name]} |"
done
echo
entries=$(awk -v a="$entries_after" -v b="$entries_before" 'BEGIN {print a - b}')
echo "Unique-token run: $entries tokens cached; RSS grew $(((rss_after - rss_before) / 1024)) MiB" \
  "($(awk -v r=$((rss_after - rss_before)) -v n="$entries" \
    'BEGIN { if (n > 0) printf "%.1f MB per 100,000 tokens", r * 1024 / n * 100000 / 1e6; else print "no entries" }'));" \
  "cache hits during the run: $(awk -v a="$hits_after" -v b="$hits_before" 'BEGIN {print a - b}') (0: every token was new)"
