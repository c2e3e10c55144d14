#!/usr/bin/env bash
# The main job on the embedded servers only (no system packages needed): builds h2lab and
# the servers under test, runs scenarios/quick.toml (the four deployment topologies over
# TLS with ALPN h2,http/1.1), then writes the report and prints the verdict table and the
# path of index.html. Results go to reports/<run-id>/, the report to reports/<run-id>/report/.
#
#   scripts/quick.sh                    # h2lab run scenarios/quick.toml, then h2lab report
#   scripts/quick.sh --out /tmp/run     # extra flags go to `h2lab run`
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p sut -p h2lab
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The run prints the verdict and, last, "results: DIR"; its exit code is kept for the end.
status=0
target/release/h2lab run -q scenarios/quick.toml "$@" | tee "$log" || status=$?
dir=$(sed -n 's/^results: //p' "$log" | tail -1)
if [ -n "$dir" ] && [ -f "$dir/manifest.json" ]; then
  target/release/h2lab report "$dir" | grep -E '^(report of|open )' || { [ "$status" -ne 0 ] || status=1; }
fi
exit "$status"
