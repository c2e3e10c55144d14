#!/usr/bin/env bash
# The main job on the embedded servers only (no system packages needed): each topology
# (direct edge, sut reverse proxy, in-process host, out-of-process host) over TLS with
# ALPN h2,http/1.1, driven by `h2lab load` for a few seconds; results (JSON + .hlog) go to
# reports/quick-<time>/. Replaced by `h2lab run scenarios/quick.toml` once scenarios land.
#
#   scripts/quick.sh                # 5 s per topology
#   DURATION=10s scripts/quick.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
cargo build --release -q -p sut -p h2lab
SUT=target/release/sut; H2LAB=target/release/h2lab
out="reports/quick-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
pids=()
trap 'for p in "${pids[@]:-}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT INT TERM

start() { # name args... ; sets $addr
  local name=$1; shift
  "$SUT" "$@" --log warn >"$out/$name.ready" 2>"$out/$name.log" &
  pids+=("$!")
  for _ in $(seq 1 1000); do [ -s "$out/$name.ready" ] && break; sleep 0.01; done
  addr=$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' "$out/$name.ready")
  [ -n "$addr" ] || { echo "quick: $name did not start (see $out/$name.log)" >&2; exit 1; }
}

tls=(--tls rustls --self-signed ecdsa --ca-out "$out/ca.pem")
start backend app --listen 127.0.0.1:0
backend=$addr
start direct-edge edge --listen 127.0.0.1:0 --workers 1 "${tls[@]}"; edge=$addr
start reverse-proxy proxy --listen 127.0.0.1:0 --workers 1 --upstream "http://$backend" --tls rustls --self-signed ecdsa --ca-out "$out/ca-proxy.pem"; proxy=$addr
start in-process host --hosting in-process --listen 127.0.0.1:0 --workers 1 --tls rustls --self-signed ecdsa --ca-out "$out/ca-inproc.pem"; inproc=$addr
start out-of-process host --hosting out-of-process --eager-start --listen 127.0.0.1:0 --workers 1 --tls rustls --self-signed ecdsa --ca-out "$out/ca-ooproc.pem" --app-log "$out/out-of-process-app.log"; ooproc=$addr

printf '%-16s %-10s %12s %10s %10s %10s\n' topology edge req/s p50_ms p99_ms app_saw
for spec in "direct-edge $edge ca.pem" "reverse-proxy $proxy ca-proxy.pem" "in-process $inproc ca-inproc.pem" "out-of-process $ooproc ca-ooproc.pem"; do
  set -- $spec
  name=$1; a=$2; ca="$out/$3"; port=${a##*:}
  "$H2LAB" load -q -c 16 -m 8 -d "$DURATION" --cacert "$ca" --json "$out/$name.json" --hlog "$out/$name.hlog" \
    "https://localhost:$port/plaintext" >"$out/$name.txt"
  app=$(curl -s --cacert "$ca" "https://localhost:$port/info" 2>/dev/null | sed -n 's/.*"http_version": "\([^"]*\)".*/\1/p' || true)
  rps=$(sed -n 's/.*"rps": \([0-9.]*\).*/\1/p' "$out/$name.json" | head -1)
  p50=$(awk '/"latency_us"/,/}/' "$out/$name.json" | sed -n 's/.*"p50": \([0-9]*\).*/\1/p')
  p99=$(awk '/"latency_us"/,/}/' "$out/$name.json" | sed -n 's/.*"p99": \([0-9]*\).*/\1/p')
  proto=$(awk '/"negotiated":/,/}/' "$out/$name.json" | sed -n 's/.*"protocol": "\([^"]*\)".*/\1/p' | head -1)
  awk -v n="$name" -v pr="$proto" -v r="$rps" -v a="$p50" -v b="$p99" -v app="${app:-n/a}" \
    'BEGIN { printf "%-16s %-10s %12.0f %10.3f %10.3f %10s\n", n, pr, r, a / 1000, b / 1000, app }'
done
echo "results: $out"
