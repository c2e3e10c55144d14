#!/usr/bin/env bash
# Distributed load on one machine, release build: N = 1, 2, 4 agents (`h2lab load
# --agent I/N --start-at T0 --results DIR`) share one open-loop schedule against one
# `sut edge` (one worker, pinned to the last core; the agents to the others), then
# `h2lab merge` makes their results one. Prints, per N, the target and achieved total
# rate, the merged p50/p99, every index accounted for (merged latencies = rate x
# duration), and the merge time; medians of ROUNDS alternating rounds, with the CPU
# model and kernel they came from.
# Usage: scripts/bench-agents.sh        env: RATE=20000 DURATION=5s CONNS=32 ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${RATE:-20000}
duration=${DURATION:-5s}
conns=${CONNS:-32}
rounds=${ROUNDS:-3}
cargo build --release -q -p h2lab -p sut
h2lab=$PWD/target/release/h2lab
sut=$PWD/target/release/sut
out=$(mktemp -d)
sut_pid=""
cleanup() {
    [[ -n $sut_pid ]] && kill "$sut_pid" 2>/dev/null || true
    rm -rf "$out"
}
trap cleanup EXIT

last=$(( $(nproc) - 1 ))
others="0-$(( last > 0 ? last - 1 : 0 ))"
taskset -c "$last" "$sut" edge --listen 127.0.0.1:0 --workers 1 >"$out/sut.out" 2>"$out/sut.err" &
sut_pid=$!
# Poll for the readiness line (not a fixed wait).
for _ in $(seq 300); do
    grep -q '"listening"' "$out/sut.out" 2>/dev/null && break
    kill -0 "$sut_pid" 2>/dev/null || { cat "$out/sut.err"; exit 1; }
    sleep 0.1
done
addr=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["addr"])' "$out/sut.out")
url="http://$addr/"

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, kernel $(uname -r)"
echo "target: sut edge, 1 worker on core $last; agents on cores $others; -r $rate -c $conns -d $duration, h1"
echo

one_round() { # N ROUND -> appends "N rps p50 p99 merged_count expected merge_s" to $out/rows
    local n=$1 r=$2 dir="$out/n$1-r$2"
    mkdir -p "$dir"
    local t0
    t0=$(python3 -c 'import time; print(f"{time.time() + 1.5:.3f}")')
    local pids=()
    for (( i = 0; i < n; i++ )); do
        taskset -c "$others" "$h2lab" load --quiet --agent "$i/$n" --start-at "$t0" \
            --results "$dir/res" -r "$rate" -c "$conns" -d "$duration" "$url" >"$dir/agent-$i.log" 2>&1 &
        pids+=($!)
    done
    local failed=0
    for p in "${pids[@]}"; do wait "$p" || failed=1; done
    if (( failed )); then
        echo "N=$n round $r: an agent failed:"; tail -n 3 "$dir"/agent-*.log; return 1
    fi
    local began ended
    began=$(date +%s.%N)
    "$h2lab" merge "$dir/res" --out "$dir/merged" >"$dir/merge.log"
    ended=$(date +%s.%N)
    python3 - "$dir/merged" "$n" "$began" "$ended" "$rate" "$duration" >>"$out/rows" <<'EOF'
import json, sys
d, n, began, ended, rate, dur = sys.argv[1:]
r = json.load(open(f"{d}/cells/merged/rep-1/result.json"))
secs = float(dur.rstrip("s"))
print(n, r["summary"]["rps"], r["latency_us"]["p50"], r["latency_us"]["p99"],
      r["latency_us"]["count"] + r["error_latency_us"]["count"], int(float(rate) * secs),
      float(ended) - float(began))
EOF
}

for (( r = 1; r <= rounds; r++ )); do
    # Alternate the order of N between rounds, so drift on the machine spreads evenly.
    if (( r % 2 )); then order="1 2 4"; else order="4 2 1"; fi
    for n in $order; do one_round "$n" "$r"; done
done

python3 - "$out/rows" "$rate" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
rate = float(sys.argv[2])
print(f'{"agents":>6} {"target/s":>10} {"achieved/s":>11} {"ratio":>6} {"p50 ms":>8} {"p99 ms":>8} {"recorded":>17} {"merge s":>8}')
for n in sorted({int(r[0]) for r in rows}):
    mine = [r for r in rows if int(r[0]) == n]
    med = lambda k: statistics.median(float(r[k]) for r in mine)
    counts = {f"{r[4]}/{r[5]}" for r in mine}
    print(f'{n:>6} {rate:>10.0f} {med(1):>11.0f} {med(1) / rate:>6.3f} {med(2) / 1000:>8.3f} {med(3) / 1000:>8.3f} {",".join(sorted(counts)):>17} {med(6):>8.3f}')
print(f"medians of {len(rows) // 3} rounds; recorded = merged latencies / rate x duration")
EOF
