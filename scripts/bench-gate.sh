#!/usr/bin/env bash
# Measures the regression gate: how often an unchanged candidate fails it (false alarms)
# and how often a known slowdown is caught (detection), per metric.
#
#   scripts/bench-gate.sh [SCENARIO]      default scenarios/ci-gate.toml
#   TRIALS=20 DELAYS="5 10 20" OUT=reports/bench-gate scripts/bench-gate.sh
#   REUSE=1 OUT=reports/bench-gate scripts/bench-gate.sh   # keep the trials already in OUT
#
# Each trial is one `h2lab run --variant`: the scenario measured for `a`, `a2` (the same
# servers: an A/A pair) and one variant per delay whose every `sut edge` is slower by that
# percentage of the baseline p50 (SUT_EXTRA_LATENCY, spun, not slept), interleaved cell by
# cell so the drift of the machine hits all alike. Trials share no runs, so they are
# independent: (a, a2) gives TRIALS A/A pairs, (a, b<delay>) TRIALS detection trials each.
# For contrast, `a` of one trial against `a` of the next is the A/A pair of two separate
# runs minutes apart (what a stored baseline gives).
# The gate runs with the scenario's thresholds (the defaults where it names none).
set -euo pipefail
cd "$(dirname "$0")/.."
scenario="${1:-scenarios/ci-gate.toml}"
trials="${TRIALS:-20}"
delays="${DELAYS:-5 10 20}"
out="${OUT:-reports/bench-gate-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"

cargo build --release -q -p h2lab -p sut
h2lab=target/release/h2lab

echo "bench-gate: $scenario, $trials trials, delays ${delays// /% }% of the baseline p50 -> $out"
# The baseline p50: median over the cells and repetitions of one plain run.
if [ "${REUSE:-0}" != 1 ] || [ ! -f "$out/p50/manifest.json" ]; then
  rm -rf "${out:?}/p50"
  env -u SUT_EXTRA_LATENCY "$h2lab" run -q --out "$out/p50" "$scenario" >/dev/null
fi
p50_us=$(python3 - "$out/p50" <<'EOF'
import json, sys, pathlib, statistics
d = pathlib.Path(sys.argv[1])
vals = [json.loads(p.read_text())["latency_us"]["p50"] for p in d.glob("cells/*/*/result.json")]
print(statistics.median(vals))
EOF
)
variant_flags=(--variant a --variant a2)
for pct in $delays; do
  delay="$(python3 -c "print(max(1, round($p50_us * $pct / 100)))")us"
  variant_flags+=(--variant "b$pct" --variant-env "b$pct:SUT_EXTRA_LATENCY=$delay")
  echo "  +$pct% = $delay at every edge (baseline p50 $p50_us us)"
done
for t in $(seq 1 "$trials"); do
  if [ "${REUSE:-0}" = 1 ] && grep -qs '"complete": true' "$out/t$t/a/manifest.json"; then
    echo "  kept t$t"
    continue
  fi
  rm -rf "${out:?}/t$t"
  start=$(date +%s)
  env -u SUT_EXTRA_LATENCY "$h2lab" run -q --out "$out/t$t" "${variant_flags[@]}" "$scenario" >/dev/null
  echo "  ran t$t ($(($(date +%s) - start)) s)"
done

gate() { # BASE CAND TAG: exit 0 pass, 1 fail; anything else is refused and counted apart
  local code=0
  "$h2lab" gate --baseline "$1" --candidate "$2" --json "$out/gates/$3.json" \
    >"$out/gates/$3.md" 2>"$out/gates/$3.err" || code=$?
  if [ "$code" -gt 1 ]; then
    echo "$3 $(tail -1 "$out/gates/$3.err")" >>"$out/gates/refused.txt"
    rm -f "$out/gates/$3.json"
  fi
  return 0
}
rm -rf "${out:?}/gates"
mkdir -p "$out/gates"
for t in $(seq 1 "$trials"); do
  gate "$out/t$t/a" "$out/t$t/a2" "interleaved.aa.$t"
  for pct in $delays; do gate "$out/t$t/a" "$out/t$t/b$pct" "interleaved.b$pct.$t"; done
  if [ "$t" -lt "$trials" ]; then
    next=$((t + 1))
    gate "$out/t$t/a" "$out/t$next/a" "separate.aa.$t"
    for pct in $delays; do gate "$out/t$t/a" "$out/t$next/b$pct" "separate.b$pct.$t"; done
  fi
done

python3 - "$out" "$delays" <<'EOF'
import json, sys, pathlib, collections
out, delays = pathlib.Path(sys.argv[1]), sys.argv[2].split()
metrics = ["rps", "p50", "p99", "p99.9", "error_rate", "slo"]
for mode, title in [("interleaved", "interleaved in one run (h2lab run --variant)"),
                    ("separate", "separate runs, one trial apart (a stored baseline)")]:
    print(f"\ngate, {title}: share of pairs failing, per metric regressed (slo: an SLO not met)")
    print(f"  {'pairs':<18}{'n':>4}{'gate fails':>12}" + "".join(f"{m:>12}" for m in metrics) + f"{'inconclusive':>14}")
    for kind, label in [("aa", "A/A (false)")] + [(f"b{p}", f"+{p}% p50 (caught)") for p in delays]:
        files = sorted((out / "gates").glob(f"{mode}.{kind}.*.json"))
        n = len(files)
        if n == 0:
            continue
        fail = collections.Counter(); failed = incon = 0
        for f in files:
            v = json.loads(f.read_text())
            failed += not v["pass"]
            incon += bool(v["inconclusive"])
            for m in {m for _, m in v["regressed"]}:
                fail[m] += 1
            fail["slo"] += any(not s["ok"] for s in v["slos"])
        pct = lambda k: f"{100 * k / n:.0f}%"
        print(f"  {label:<18}{n:>4}{pct(failed):>12}" + "".join(f"{pct(fail[m]):>12}" for m in metrics) + f"{pct(incon):>14}")
refused = out / "gates" / "refused.txt"
if refused.exists():
    lines = refused.read_text().splitlines()
    print(f"\n{len(lines)} pair(s) refused by the gate (not counted above; see {refused}):")
    for l in lines[:3]:
        print("  " + l[:200])
EOF
