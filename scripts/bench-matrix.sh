#!/usr/bin/env bash
# Times the whole HTTP/2 negotiation matrix (scenarios/h2-matrix.toml) on a release build,
# without and with the cross-check, and prints cells, servers and seconds.
# Usage: scripts/bench-matrix.sh [SCENARIO]
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-scenarios/h2-matrix.toml}
cargo build --release -q -p h2lab -p sut
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for mode in plain cross-check; do
    flag=()
    [[ $mode == cross-check ]] && flag=(--cross-check)
    start=$(date +%s.%N)
    line=$(target/release/h2lab matrix "$scenario" -q --out "$out/$mode" "${flag[@]}" | head -1)
    end=$(date +%s.%N)
    printf '%-12s %6.1f s wall  %s\n' "$mode" "$(echo "$end - $start" | bc)" "$line"
done
