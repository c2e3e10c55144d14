#!/usr/bin/env bash
# Which server survives which attack, on a release build:
#  1. the survival matrix (scenarios/survival.toml, or SCENARIO): every topology, nginx,
#     Apache and HAProxy as the lab's templates configure them, under each attack beside
#     a legitimate open-loop HTTP/2-over-TLS load;
#  2. `sut edge` over h2c with its limits on, and with every limit a flag can turn off
#     off, under the same attacks (`h2lab attack`, PHASE each phase).
# Prints per server and attack: calm p99, attacked p99, their ratio, the peak-RSS ratio of
# the server's processes, and how the attacker was cut off. The servers run on the last
# core, the generator and the attacker on the others (`h2lab run --pin`, taskset): on a
# small machine an unpinned flood takes the server's CPU, and the p99 then measures that.
# Usage: scripts/bench-attacks.sh [SCENARIO]     env: PHASE=2s RATE=500 SKIP_MATRIX=1
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-scenarios/survival.toml}
phase=${PHASE:-2s}
rate=${RATE:-500}
cargo build --release -q -p h2lab -p sut
export H2LAB_SUT_BIN=$PWD/target/release/sut
h2lab=target/release/h2lab
out=$(mktemp -d)
edge_pid=""
cleanup() {
    [[ -n $edge_pid ]] && kill "$edge_pid" 2>/dev/null || true
    rm -rf "$out"
}
trap cleanup EXIT

table_header() {
    printf '%-24s %-32s %9s %9s %7s %6s  %s\n' server attack "calm p99" "atk p99" ratio RSS "cut off"
}

if [[ -z ${SKIP_MATRIX:-} ]]; then
    echo "== survival matrix: $scenario (release)"
    "$h2lab" run -q --pin "$scenario" --out "$out/matrix" >/dev/null || true
    table_header
    python3 - "$out/matrix/manifest.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
axes = {c["id"]: c["axes"] for c in m["plan"]["cells"]}
for r in m["cells"]:
    a = r.get("attack")
    if not a:
        print(f'{axes[r["cell"]]["topology"]:<24} {"?":<32} {r["status"]}: {r.get("reason") or ""}')
        continue
    rss = f'{a["rss_ratio"]:.2f}' if a.get("rss_ratio") else "-"
    ends = ", ".join(f"{k} x{v}" for k, v in a["endings"].items())
    mark = "" if a["held"] else "  FELL"
    print(f'{axes[r["cell"]]["topology"]:<24} {a["kind"]:<32} {a["p99_ms"][0]:>7.2f}ms {a["p99_ms"][1]:>7.2f}ms {a["p99_ratio"]:>6.1f}x {rss:>6}  {ends}{mark}')
EOF
fi

last=$(( $(nproc) - 1 ))
others="0-$(( last > 0 ? last - 1 : 0 ))"
echo
echo "== sut edge over h2c, limits on vs off (h2lab attack, -r $rate, $phase phases)"
undefended=(--h2-flood-burst 0 --h2-max-pending-resets 0 --h2-max-local-resets 0
    --send-timeout 0s --min-body-rate 0 --header-timeout 1h --max-header-bytes 1000000000)
kinds=(rapid-reset made-you-reset:window-overflow continuation-flood hpack-bomb ping-flood
    settings-flood empty-frames data-dribble stream-exhaustion)
table_header
for limits in on off; do
    flags=()
    [[ $limits == off ]] && flags=("${undefended[@]}")
    for kind in "${kinds[@]}"; do
        taskset -c "$last" target/release/sut edge --listen 127.0.0.1:0 --workers 1 "${flags[@]}" >"$out/edge.line" 2>/dev/null &
        edge_pid=$!
        for _ in $(seq 100); do
            grep -q listening "$out/edge.line" 2>/dev/null && break
            sleep 0.05
        done
        addr=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["addr"])' "$out/edge.line")
        taskset -c "$others" "$h2lab" attack "$kind" "http://$addr/plaintext" --proto h2c -r "$rate" -c 4 -d "$phase" \
            --pid "$edge_pid" -q --out "$out/a.json" >/dev/null || true
        kill "$edge_pid" 2>/dev/null || true
        wait "$edge_pid" 2>/dev/null || true
        edge_pid=""
        python3 - "$out/a.json" "sut edge (limits $limits)" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
j, t = r["judgement"], r.get("target") or {}
rss = f'{j["rss_ratio"]:.2f}' if j.get("rss_ratio") else "-"
ends = {}
for c in r["connections"]:
    e = c["ending"]
    label = e["how"] + (" " + e["code"] if e.get("code") else "") + (f' {e["status"]}' if e.get("status") else "")
    ends[label] = ends.get(label, 0) + 1
ends = ", ".join(f"{k} x{v}" for k, v in ends.items())
mark = "" if j["held"] else "  FELL"
print(f'{sys.argv[2]:<24} {r["kind"]:<32} {r["calm"]["p99_us"]/1000:>7.2f}ms {r["attacked"]["p99_us"]/1000:>7.2f}ms {j["p99_ratio"]:>6.1f}x {rss:>6}  {ends}{mark}')
EOF
    done
done
