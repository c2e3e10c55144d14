#!/usr/bin/env bash
# Servers under test against nginx and HAProxy, side by side, in one run.
#
#   scripts/bench-servers.sh            # 10 s per measurement
#   DURATION=30 scripts/bench-servers.sh
#   ENGINE=hyper scripts/bench-servers.sh   # sut on hyper over the h2 crate (the reference)
#   ROUNDS=3 scripts/bench-servers.sh       # each figure the median of 3 alternating rounds
#
# Pins each server to core 1 and h2load to core 0 (with a proxy, its backend `sut app`
# shares core 0 with h2load, identically for every proxy). Prints requests/s and the ratio
# of sut to its peer, and also requests per server CPU-second (the client core can be
# the limit with h1, where requests/s then ties):
#   edge:  sut edge vs nginx and h2o (1 worker, same 13-byte response; h2o serves it as a
#          static file) h1 cleartext, 64 connections; h2c and h2 over TLS (ECDSA P-256),
#          16 connections x 16 streams (nginx 1.22 cannot serve h1 and h2c on one port)
#   proxy: sut proxy vs nginx, HAProxy and h2o over the same backend, TLS at the edge,
#          h1 64 connections and h2 16x16
# Needs: nginx, haproxy, h2o, h2load (scripts/setup.sh), taskset, perl, openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-1}
case $ROUNDS in ''|*[!0-9]*|0) echo "bench-servers: ROUNDS must be a positive whole number, not '$ROUNDS'" >&2; exit 2;; esac
WARMUP=${WARMUP:-2}
SERVER_CPU=${SERVER_CPU:-1}
export SUT_H2_ENGINE=${ENGINE:-lab}
CLIENT_CPU=${CLIENT_CPU:-0}

for tool in h2load nginx haproxy h2o taskset openssl perl; do
  command -v "$tool" >/dev/null || PATH="$PATH:/usr/sbin" command -v "$tool" >/dev/null || {
    echo "bench-servers: $tool is missing (run scripts/setup.sh)" >&2; exit 2; }
done
export PATH="$PATH:/usr/sbin"

cargo build --release -q -p sut
SUT=target/release/sut
work=$(mktemp -d /tmp/h2lab-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]:-}" ${pids_backend:-}; do [ -n "$p" ] && kill -TERM -- "-$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen=>1,LocalAddr=>"127.0.0.1:0")->sockport'; }

# One ECDSA P-256 certificate for every server, so the handshakes cost the same.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" > "$work/combined.pem"
user=""; [ "$(id -u)" = 0 ] && user="user nobody nogroup;"
# h2o reads its key after it has dropped to `nobody`.
h2o_user=""; [ "$(id -u)" = 0 ] && h2o_user="user: nobody" && chmod 644 "$work/key.pem"

# Starts a command pinned to the server core in its own process group; sets $started.
start_pinned() {
  setsid taskset -c "$SERVER_CPU" "$@" >"$work/out.$#.$RANDOM" 2>>"$work/servers.log" &
  started=$!
  pids+=("$started")
}

# Starts `sut ARGS` pinned, waits for its readiness line, sets $addr.
start_sut() {
  local out="$work/sut.$RANDOM"
  setsid taskset -c "$SERVER_CPU" "$SUT" "$@" >"$out" 2>>"$work/servers.log" &
  pids+=("$!")
  for _ in $(seq 1 500); do
    if [ -s "$out" ]; then addr=$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' "$out"); return; fi
    sleep 0.02
  done
  echo "bench-servers: sut $1 did not start" >&2; exit 1
}

wait_port() {
  for _ in $(seq 1 500); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
    sleep 0.02
  done
  echo "bench-servers: nothing listens on $1" >&2; exit 1
}

stop_all() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -TERM -- "-$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  pids=()
}

render() { # template output key=value... (values may span lines)
  local tpl=$1 out=$2; shift 2
  cp "$tpl" "$out"
  for kv in "$@"; do
    K=${kv%%=*} V=${kv#*=} perl -0pi -e 's/\{\{\Q$ENV{K}\E\}\}/$ENV{V}/g' "$out"
  done
  if grep -q '{{' "$out"; then echo "bench-servers: $out has unrendered {{...}}" >&2; exit 1; fi
}

# h2load pinned to the client core; prints requests/s, fails when any request failed.
load() { # url h2load-args...
  local url=$1; shift
  local out
  out=$(taskset -c "$CLIENT_CPU" h2load "$@" -D "$DURATION" --warm-up-time "$WARMUP" "$url" 2>&1)
  local rps failed non2xx
  rps=$(echo "$out" | sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p')
  failed=$(echo "$out" | sed -n 's/^requests: .* \([0-9]*\) failed.*/\1/p')
  non2xx=$(echo "$out" | sed -n 's/^status codes: [0-9]* 2xx, \([0-9]*\) 3xx, \([0-9]*\) 4xx, \([0-9]*\) 5xx/\1 \2 \3/p')
  if [ -z "$rps" ] || [ "${failed:-1}" != 0 ] || [ "$non2xx" != "0 0 0" ]; then
    echo "bench-servers: h2load reported failures for ${current:-} $url:" >&2; echo "$out" | tail -12 >&2; exit 1
  fi
  printf '%.0f' "$rps"
}

# CPU ticks (user + system) of every process in process group $1 (a server we started).
group_ticks() {
  cat /proc/[0-9]*/stat 2>/dev/null |
    awk -v pg="$1" '{ sub(/^.*\) /, ""); if ($3 == pg) s += $12 + $13 } END { print s + 0 }'
}

# Like `load`, for the server started last: also sets P[key] = requests per CPU-second of
# the server (all its processes), which still compares servers when the client core is
# the limit.
declare -A P
server_load() { # key url h2load-args...
  local key=$1; shift
  local pg=${pids[-1]} t0 t1 w0 w1
  current=$key
  t0=$(group_ticks "$pg"); w0=$(date +%s.%N)
  local r p
  r=$(load "$@")
  t1=$(group_ticks "$pg"); w1=$(date +%s.%N)
  p=$(awk -v r="$r" -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v w="$w1" -v v="$w0" \
    'BEGIN { u = t / hz / (w - v); printf "%.0f", (u > 0) ? r / u : 0 }')
  # Every round's figure is kept; the tables show the median so far.
  RL[$key]="${RL[$key]:-} $r"; PL[$key]="${PL[$key]:-} $p"
  R[$key]=$(median ${RL[$key]}); P[$key]=$(median ${PL[$key]})
}
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
declare -A RL PL

ONLY=${ONLY:-all}   # edge, proxy or all
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
H1=(--h1 -c 64 -t 1)
H2=(-c 16 -m 16 -t 1)
declare -A R

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, kernel $(uname -r); h2o $(h2o --version 2>/dev/null | sed -n 's/^h2o version //p' | head -1); sut engine $SUT_H2_ENGINE"
if [ "$ONLY" != proxy ]; then
echo "== edge: sut edge vs nginx and h2o (1 worker each, server on core $SERVER_CPU, h2load on core $CLIENT_CPU, ${DURATION}s, median of $ROUNDS round(s)) =="
edge_round() {
for stack in rustls openssl; do
  start_sut edge --listen 127.0.0.1:0 --workers 1 --log warn --tls "$stack" --cert "$work/cert.pem" --key "$work/key.pem"
  server_load "edge_h2_$stack" "https://$addr/plaintext" "${H2[@]}"
  stop_all
done
start_sut edge --listen 127.0.0.1:0 --workers 1 --log warn
server_load edge_h1 "http://$addr/plaintext" "${H1[@]}"
server_load edge_h2c "http://$addr/plaintext" "${H2[@]}"
stop_all

p_tls=$(free_port); p_clear=$(free_port)
mkdir -p "$work/nginx"; chmod 755 "$work/nginx"
render servers-under-test/templates/nginx-static.conf "$work/nginx/nginx.conf" \
  dir="$work/nginx" workers=1 user="$user" listen="127.0.0.1:$p_tls" listen_clear="127.0.0.1:$p_clear" \
  chain="$work/cert.pem" key="$work/key.pem"
start_pinned nginx -c "$work/nginx/nginx.conf" -p "$work/nginx"
wait_port "$p_tls"
server_load nginx_h1 "http://127.0.0.1:$p_clear/plaintext" "${H1[@]}"
server_load nginx_h2 "https://127.0.0.1:$p_tls/plaintext" "${H2[@]}"
stop_all

p_tls=$(free_port); p_clear=$(free_port)
mkdir -p "$work/h2o/www"; chmod 755 "$work/h2o" "$work/h2o/www"
printf 'Hello, World!' > "$work/h2o/www/plaintext"
render servers-under-test/templates/h2o-static.conf "$work/h2o/h2o.conf" \
  dir="$work/h2o" workers=1 user="$h2o_user" port_tls="$p_tls" port_clear="$p_clear" \
  chain="$work/cert.pem" key="$work/key.pem"
start_pinned h2o -c "$work/h2o/h2o.conf"
wait_port "$p_tls"
server_load h2o_h2c "http://127.0.0.1:$p_clear/plaintext" "${H2[@]}"
server_load h2o_h2 "https://127.0.0.1:$p_tls/plaintext" "${H2[@]}"
stop_all
}
for round in $(seq 1 "$ROUNDS"); do
  [ "$ROUNDS" = 1 ] || echo "round $round of $ROUNDS" >&2
  edge_round
done

edge_table() { # R or P (requests/s or requests per server CPU-second)
  local -n T=$1
  local stack
  printf '%-30s %10s %10s %10s %9s %9s\n' workload sut nginx h2o sut/nginx sut/h2o
  printf '%-30s %10s %10s %10s %9s %9s\n' "h1 cleartext 64 conns" "${T[edge_h1]}" "${T[nginx_h1]}" - "$(ratio "${T[edge_h1]}" "${T[nginx_h1]}")" -
  printf '%-30s %10s %10s %10s %9s %9s\n' "h2c 16x16" "${T[edge_h2c]}" - "${T[h2o_h2c]}" - "$(ratio "${T[edge_h2c]}" "${T[h2o_h2c]}")"
  for stack in rustls openssl; do
    printf '%-30s %10s %10s %10s %9s %9s\n' "h2 TLS 16x16 (sut $stack)" "${T[edge_h2_$stack]}" "${T[nginx_h2]}" "${T[h2o_h2]}" \
      "$(ratio "${T[edge_h2_$stack]}" "${T[nginx_h2]}")" "$(ratio "${T[edge_h2_$stack]}" "${T[h2o_h2]}")"
  done
}
edge_table R
echo
echo "requests per server CPU-second (what each server costs, also where the client core is the limit)"
edge_table P
fi
[ "$ONLY" = edge ] && exit 0

echo
echo "== proxy: sut proxy vs nginx vs HAProxy vs h2o (proxy on core $SERVER_CPU; backend sut app and h2load on core $CLIENT_CPU; median of $ROUNDS round(s)) =="
# The backend is started unpinned-by-start_pinned: it shares the client core.
out="$work/backend"
setsid taskset -c "$CLIENT_CPU" "$SUT" app --listen 127.0.0.1:0 --workers 1 --log warn >"$out" 2>>"$work/servers.log" &
backend_pid=$!
pids_backend=$backend_pid
for _ in $(seq 1 500); do [ -s "$out" ] && break; sleep 0.02; done
backend=$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' "$out")

proxy_round() {
start_sut proxy --listen 127.0.0.1:0 --workers 1 --log warn --tls rustls --cert "$work/cert.pem" --key "$work/key.pem" --upstream "http://$backend"
server_load sut_p_h1 "https://$addr/plaintext" "${H1[@]}"
server_load sut_p_h2 "https://$addr/plaintext" "${H2[@]}"
stop_all
start_sut proxy --listen 127.0.0.1:0 --workers 1 --log warn --tls rustls --cert "$work/cert.pem" --key "$work/key.pem" --upstream "http://$backend" --upstream-proto h2
server_load sut_p_h2h2 "https://$addr/plaintext" "${H2[@]}"
stop_all

port=$(free_port); mkdir -p "$work/np"; chmod 755 "$work/np"
render servers-under-test/templates/nginx.conf "$work/np/nginx.conf" dir="$work/np" workers=1 user="$user" \
  listen="127.0.0.1:$port" backend="$backend" listen_opts=" ssl http2" \
  tls="        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;"
start_pinned nginx -c "$work/np/nginx.conf" -p "$work/np"
wait_port "$port"
server_load nginx_p_h1 "https://127.0.0.1:$port/plaintext" "${H1[@]}"
server_load nginx_p_h2 "https://127.0.0.1:$port/plaintext" "${H2[@]}"
stop_all

port=$(free_port); mkdir -p "$work/hp"
cp "$work/combined.pem" "$work/hp/cert.pem"
render servers-under-test/templates/haproxy.cfg "$work/hp/haproxy.cfg" dir="$work/hp" workers=1 \
  listen="127.0.0.1:$port" backend="$backend" backend_proto="" maxconn=4000 \
  listen_opts=" ssl crt $work/hp/cert.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3" \
  tls="    http-request set-header X-Forwarded-Proto https"
start_pinned haproxy -f "$work/hp/haproxy.cfg" -db
wait_port "$port"
server_load haproxy_p_h1 "https://127.0.0.1:$port/plaintext" "${H1[@]}"
server_load haproxy_p_h2 "https://127.0.0.1:$port/plaintext" "${H2[@]}"
stop_all
# Same again with an HTTP/2 (h2c) hop to the backend; nginx 1.22 cannot do that.
render servers-under-test/templates/haproxy.cfg "$work/hp/haproxy.cfg" dir="$work/hp" workers=1 \
  listen="127.0.0.1:$port" backend="$backend" backend_proto="proto h2" maxconn=4000 \
  listen_opts=" ssl crt $work/hp/cert.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3" \
  tls="    http-request set-header X-Forwarded-Proto https"
start_pinned haproxy -f "$work/hp/haproxy.cfg" -db
wait_port "$port"
server_load haproxy_p_h2h2 "https://127.0.0.1:$port/plaintext" "${H2[@]}"
stop_all
port=$(free_port); mkdir -p "$work/hop"; chmod 755 "$work/hop"
render servers-under-test/templates/h2o-proxy.conf "$work/hop/h2o.conf" dir="$work/hop" workers=1 \
  user="$h2o_user" port_tls="$port" backend="$backend" chain="$work/cert.pem" key="$work/key.pem"
start_pinned h2o -c "$work/hop/h2o.conf"
wait_port "$port"
server_load h2o_p_h1 "https://127.0.0.1:$port/plaintext" "${H1[@]}"
server_load h2o_p_h2 "https://127.0.0.1:$port/plaintext" "${H2[@]}"
stop_all
}
for round in $(seq 1 "$ROUNDS"); do
  [ "$ROUNDS" = 1 ] || echo "round $round of $ROUNDS" >&2
  proxy_round
done
kill -TERM -- "-$backend_pid" 2>/dev/null || true
wait "$backend_pid" 2>/dev/null || true
pids_backend=""

best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b) ? a : b }'; }
proxy_table() { # R or P (requests/s or requests per proxy CPU-second)
  local -n T=$1
  local w b label
  printf '%-24s %10s %10s %10s %10s %14s\n' workload sut nginx haproxy h2o "sut/best-peer"
  for w in h1 h2; do
    b=$(best "$(best "${T[nginx_p_$w]}" "${T[haproxy_p_$w]}")" "${T[h2o_p_$w]}")
    [ $w = h1 ] && label="h1 TLS 64 conns" || label="h2 TLS 16x16"
    printf '%-24s %10s %10s %10s %10s %14s\n' "$label" "${T[sut_p_$w]}" "${T[nginx_p_$w]}" "${T[haproxy_p_$w]}" "${T[h2o_p_$w]}" "$(ratio "${T[sut_p_$w]}" "$b")"
  done
  printf '%-24s %10s %10s %10s %10s %14s\n' "h2 16x16, h2c to app" "${T[sut_p_h2h2]}" "n/a" "${T[haproxy_p_h2h2]}" "n/a" "$(ratio "${T[sut_p_h2h2]}" "${T[haproxy_p_h2h2]}")"
}
proxy_table R
echo
echo "requests per proxy CPU-second (what each proxy costs, also where the client core is the limit)"
proxy_table P
