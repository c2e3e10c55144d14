#!/usr/bin/env bash
# h2lab against the load generators experts trust, on the same server, in one run.
#
#   scripts/bench-peers.sh                 # 3 rounds, 10 s per measurement
#   DURATION=5 ROUNDS=5 scripts/bench-peers.sh
#
# nginx (1 worker) is pinned to core 1; each generator (wrk, h2load, oha if installed,
# h2lab) is pinned to core 0 with one thread and the same connections, streams and
# duration. For each workload it prints requests per generator CPU-second (user + sys of
# the generator process), the median over ROUNDS alternating rounds with its range, and
# the ratio of h2lab's median to the peer's. Workloads: h1 64 connections; h2c 16 x 16
# streams; h2 over TLS 16 x 16 (ECDSA P-256). For h1, h2lab sends the request wrk sends
# (GET, Host only: `-H "user-agent:"`), and its default one (with its User-Agent) on a
# row of its own; for h2, h2load and h2lab both send their User-Agent. h1 runs on
# h2lab's io_uring engine where the kernel allows it, and again with --io epoll. Then
# the open loop: h2lab -r 50000 for 10 s, achieved vs target.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
case $ROUNDS in ''|*[!0-9]*|0) echo "bench-peers: ROUNDS must be a positive whole number, not '$ROUNDS'" >&2; exit 2;; esac
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
for tool in nginx wrk h2load taskset openssl perl; do
  command -v "$tool" >/dev/null || { echo "bench-peers: $tool is missing (run scripts/setup.sh)" >&2; exit 2; }
done
cargo build --release -q -p h2lab
H2LAB=target/release/h2lab
work=$(mktemp -d /tmp/h2lab-peers.XXXXXX); chmod 755 "$work"
nginx_pid=""
cleanup() { [ -n "$nginx_pid" ] && kill -TERM -- "-$nginx_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

free_port() { perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen=>1,LocalAddr=>"127.0.0.1:0")->sockport'; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
user=""; [ "$(id -u)" = 0 ] && user="user nobody nogroup;"
p_tls=$(free_port); p_clear=$(free_port)
cp servers-under-test/templates/nginx-static.conf "$work/nginx.conf"
for kv in "dir=$work" "workers=1" "user=$user" "listen=127.0.0.1:$p_tls" "listen_clear=127.0.0.1:$p_clear" "chain=$work/cert.pem" "key=$work/key.pem"; do
  k=${kv%%=*}; v=${kv#*=}; v=${v//\//\\/}; sed -i "s/{{$k}}/$v/g" "$work/nginx.conf"
done
# nginx's h2c listener: a second server block speaking h2 without TLS.
p_h2c=$(free_port)
sed -i "s/listen 127.0.0.1:$p_clear;/listen 127.0.0.1:$p_clear;\n        listen 127.0.0.1:$p_h2c http2;/" "$work/nginx.conf"
setsid taskset -c "$SERVER_CPU" nginx -c "$work/nginx.conf" -p "$work" >/dev/null 2>&1 &
nginx_pid=$!
for _ in $(seq 1 500); do (exec 3<>"/dev/tcp/127.0.0.1/$p_tls") 2>/dev/null && break; sleep 0.02; done

# Runs a generator pinned to the client core; prints "requests cpu_seconds".
measure() { # name parse-mode command...
  local name=$1 mode=$2; shift 2
  local out="$work/$name.out"
  # `times` reports the CPU of the shell's finished children: the generator alone.
  local cpu
  cpu=$(bash -c 'taskset -c '"$CLIENT_CPU"' "$@" >"'"$out"'" 2>&1; times' _ "$@" | tail -1 | awk '{
      split($1,u,"m"); split($2,s,"m"); sub("s","",u[2]); sub("s","",s[2]);
      printf "%.3f", u[1]*60+u[2]+s[1]*60+s[2] }')
  local n
  case $mode in
    wrk) n=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$out");;
    h2load) n=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' "$out");;
    oha) n=$(sed -n 's/.*"successRate".*//p;s/^ *Total: *\([0-9]*\).*/\1/p' "$out" | head -1);;
    h2lab) n=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$out");;
  esac
  [ -n "$n" ] || { echo "bench-peers: could not read $name's output:" >&2; cat "$out" >&2; exit 1; }
  echo "$n $cpu"
}

D="${DURATION}s"
runs="$work/runs"; : >"$runs"
# One row per measurement: workload tool requests cpu_seconds.
run() { # workload tool parse-mode command...
  local w=$1 tool=$2; shift 2
  local n c
  read -r n c < <(measure "$tool-${w// /_}" "$@") || true
  [ -n "$n" ] || exit 1 # measure said why
  echo "$w|$tool|$n|$c" >>"$runs"
}

# Every figure comes with the machine it was measured on: the h1 ratios depend on the
# kernel (see the README's "Benchmarks").
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, kernel $(uname -r); nginx $(nginx -v 2>&1 | sed 's/.*\///'), wrk $(wrk -v 2>&1 | sed -n 's/^wrk \([^ ]*\).*/\1/p' | head -1), h2load $(h2load --version 2>&1 | sed -n 's/.*nghttp2\/\([0-9.]*\).*/\1/p' | head -1); h1 engine: $("$H2LAB" load --io uring -n 1 -q "http://127.0.0.1:$p_clear/plaintext" >/dev/null 2>&1 && echo io_uring || echo "tokio (io_uring not available)")"

# Rounds alternate the generators, so that a slow spell of the machine falls on all of
# them alike; each figure is the median over the rounds.
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  # h1, 64 connections
  run "h1 64 conns" wrk wrk wrk -t1 -c64 -d"$D" "http://127.0.0.1:$p_clear/plaintext"
  run "h1 64 conns" h2load h2load h2load --h1 -t1 -c64 -D "$DURATION" "http://127.0.0.1:$p_clear/plaintext"
  run "h1 64 conns" h2lab h2lab "$H2LAB" load -q --threads 1 -c64 -H "user-agent:" -d "$D" "http://127.0.0.1:$p_clear/plaintext"
  # The same load on h2lab's epoll engine (what runs where io_uring is not allowed).
  run "h1 64 conns --io epoll" h2lab h2lab "$H2LAB" load -q --threads 1 -c64 -H "user-agent:" --io epoll -d "$D" "http://127.0.0.1:$p_clear/plaintext"
  # h2lab's default request, with its User-Agent: nginx is slower per request, and it is
  # the bottleneck here, so the generator waits more per request.
  run "h1 64 conns, with UA" h2lab h2lab "$H2LAB" load -q --threads 1 -c64 -d "$D" "http://127.0.0.1:$p_clear/plaintext"
  # h2c 16 x 16
  run "h2c 16x16" h2load h2load h2load -t1 -c16 -m16 -D "$DURATION" "http://127.0.0.1:$p_h2c/plaintext"
  run "h2c 16x16" h2lab h2lab "$H2LAB" load -q --threads 1 -c16 -m16 --proto h2c -d "$D" "http://127.0.0.1:$p_h2c/plaintext"
  # h2 over TLS 16 x 16
  run "h2 TLS 16x16" h2load h2load h2load -t1 -c16 -m16 -D "$DURATION" "https://127.0.0.1:$p_tls/plaintext"
  if command -v oha >/dev/null; then
    run "h2 TLS 16x16" oha oha oha --no-tui -z "$D" -c16 --http2 -p 16 --insecure "https://127.0.0.1:$p_tls/plaintext"
  fi
  run "h2 TLS 16x16" h2lab h2lab "$H2LAB" load -q --threads 1 -c16 -m16 -k -d "$D" "https://127.0.0.1:$p_tls/plaintext"
done

# Per workload and tool: median requests per CPU-second, and its range over the rounds;
# the ratio is h2lab's median over the peer's (h2lab's extra h1 rows are compared with
# wrk).
printf '%-26s %-8s %14s %20s %12s\n' workload tool "req/cpu-s" "range" "h2lab/it"
awk -F'|' '
  function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function range(list,   a, n, i, lo, hi) {
    n = split(list, a, " "); lo = hi = a[1]
    for (i = 2; i <= n; i++) { if (a[i] < lo) lo = a[i]; if (a[i] > hi) hi = a[i] }
    return sprintf("%.0f-%.0f", lo, hi)
  }
  { key = $1 SUBSEP $2; if (!(key in rates)) { order[++k] = key }
    rates[key] = rates[key] " " (($4 > 0) ? $3 / $4 : 0) }
  END {
    for (i = 1; i <= k; i++) med[order[i]] = median(rates[order[i]])
    for (i = 1; i <= k; i++) {
      split(order[i], p, SUBSEP); w = p[1]; t = p[2]
      if (w ~ /epoll|with UA/) { r = sprintf("%.2fx (wrk)", med[order[i]] / med["h1 64 conns" SUBSEP "wrk"]) }
      else if (t == "h2lab") r = "-"
      else r = sprintf("%.2fx", med[w SUBSEP "h2lab"] / med[order[i]])
      printf "%-26s %-8s %14.0f %20s %12s\n", w, t, med[order[i]], range(rates[order[i]]), r
    }
  }' "$runs"

echo
echo "open loop: h2lab -r 50000 for ${DURATION}s (h1, 64 connections, one thread on core $CLIENT_CPU)"
taskset -c "$CLIENT_CPU" "$H2LAB" load -q --threads 1 -c64 -r 50000 -d "$D" --json "$work/open.json" "http://127.0.0.1:$p_clear/plaintext" >/dev/null
sed -n 's/.*"achieved_ratio": \([0-9.]*\).*/  achieved \/ target = \1/p; s/.*"generator_bound": \(.*\),/  generator_bound = \1/p' "$work/open.json"
