#!/usr/bin/env bash
# What recording Server-Timing costs the generator: this h2lab against an older build
# (OLD=path/to/h2lab, e.g. one built from the commit before the hop histograms), on the
# same `sut edge`, in alternating rounds. The edge's responses carry `server-timing:
# app;dur=...`, which this build parses and records and the old one skips as an unknown
# header. Prints requests per generator CPU-second (user + sys), the median of ROUNDS
# rounds, and the ratio new / old, for h1 (64 connections) and h2c (16 x 16 streams).
#
#   OLD=/tmp/h2lab-old ROUNDS=5 DURATION=5 scripts/bench-hops.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OLD:?set OLD to the h2lab binary to compare with}"
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
cargo build --release -q -p h2lab -p sut
NEW=target/release/h2lab
work=$(mktemp -d /tmp/h2lab-hops.XXXXXX)
sut_pid=""
cleanup() { [ -n "$sut_pid" ] && kill -TERM "$sut_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
taskset -c "$SERVER_CPU" target/release/sut edge --listen 127.0.0.1:0 --workers 1 >"$work/sut.out" 2>&1 &
sut_pid=$!
for _ in $(seq 1 500); do grep -q 'listening' "$work/sut.out" 2>/dev/null && break; sleep 0.02; done
addr=$(grep -o '127\.0\.0\.1:[0-9]*' "$work/sut.out" | head -1)
[ -n "$addr" ] || { echo "bench-hops: sut edge did not start: $(cat "$work/sut.out")" >&2; exit 2; }

measure() { # binary args... -> "requests/cpu-second"
  local bin=$1; shift
  local cpu
  cpu=$(bash -c 'taskset -c '"$CLIENT_CPU"' "$@" >/dev/null 2>&1; times' _ "$bin" "$@" --json "$work/r.json" | tail -1 | awk '{
      split($1,u,"m"); split($2,s,"m"); sub("s","",u[2]); sub("s","",s[2]);
      printf "%.3f", u[1]*60+u[2]+s[1]*60+s[2] }')
  python3 -c "import json; r=json.load(open('$work/r.json')); print(r['summary']['requests'] / $cpu)"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "bench-hops: $NEW vs $OLD against sut edge $addr, $ROUNDS rounds of ${DURATION}s"
printf "%-10s %14s %14s %8s\n" workload "new req/cpu-s" "old req/cpu-s" "new/old"
for w in h1 h2c; do
  case $w in
    h1) args=(load -q --threads 1 -c 64 -d "${DURATION}s" "http://$addr/plaintext") ;;
    h2c) args=(load -q --threads 1 -c 16 -m 16 --proto h2c -d "${DURATION}s" "http://$addr/plaintext") ;;
  esac
  : >"$work/new"; : >"$work/old"; : >"$work/ratio"
  for _ in $(seq 1 "$ROUNDS"); do
    n=$(measure "$NEW" "${args[@]}"); o=$(measure "$OLD" "${args[@]}")
    echo "$n" >>"$work/new"; echo "$o" >>"$work/old"
    python3 -c "print($n / $o)" >>"$work/ratio"
  done
  printf "%-10s %14.0f %14.0f %8.3f  (paired ratios %s)\n" "$w" "$(median <"$work/new")" "$(median <"$work/old")" \
    "$(median <"$work/ratio")" "$(sort -g "$work/ratio" | awk '{printf "%.3f ", $1}')"
done
