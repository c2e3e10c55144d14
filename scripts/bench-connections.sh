#!/usr/bin/env bash
# 10,000 concurrent connections from one h2lab process (closed loop) against `sut edge`,
# and the generator's peak resident memory (goal: under 500 MB).
#
#   scripts/bench-connections.sh            # 10000 connections, 5 s
#   CONNECTIONS=20000 DURATION=10 scripts/bench-connections.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS=${CONNECTIONS:-10000}
DURATION=${DURATION:-5}
# Each side needs a descriptor per connection.
ulimit -n $((CONNECTIONS * 2 + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p sut -p h2lab
work=$(mktemp -d /tmp/h2lab-conns.XXXXXX)
setsid target/release/sut edge --listen 127.0.0.1:0 --workers 1 --log warn \
  --max-connections $((CONNECTIONS * 2)) >"$work/sut.out" 2>"$work/sut.err" &
sut_pid=$!
trap 'kill -TERM -- "-$sut_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT INT TERM
for _ in $(seq 1 500); do [ -s "$work/sut.out" ] && break; sleep 0.02; done
addr=$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' "$work/sut.out")
target/release/h2lab load -q -c "$CONNECTIONS" -d "${DURATION}s" --timeout 30s \
  --json "$work/r.json" "http://$addr/plaintext" | head -3
rss=$(sed -n 's/.*"generator_peak_rss_bytes": \([0-9]*\).*/\1/p' "$work/r.json")
conns=$(awk '/"negotiated"/,/}/' "$work/r.json" | sed -n 's/.*"connections": \([0-9]*\).*/\1/p' | head -1)
echo "connections established: $conns of $CONNECTIONS"
awk -v b="$rss" 'BEGIN { printf "generator peak RSS: %.1f MB (goal < 500 MB)\n", b / 1048576 }'
