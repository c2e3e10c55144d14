#!/usr/bin/env bash
# Measures the regression gate: how often an unchanged rerun fails it (false alarms) and how
# often a known slowdown is caught (detection), per metric.
#
#   scripts/bench-gate.sh [SCENARIO]      default scenarios/ci-gate.toml
#   ROUNDS=7 DELAYS="5 10 20" OUT=reports/bench-gate scripts/bench-gate.sh
#   REUSE=1 OUT=reports/bench-gate scripts/bench-gate.sh   # keep the runs already in OUT
#
# Each round runs the scenario unchanged (A) and once per delay with every `sut edge` made
# slower by that percentage of the first A run's p50 (SUT_EXTRA_LATENCY, spun, not slept),
# interleaved so drift of the machine hits A and B alike. Every pair of A runs is an A/A
# pair (ROUNDS=7 gives 21 pairs); every (A, B) pair is a detection trial (49 per delay).
# Pairs share runs, so they are not independent: raise ROUNDS for tighter figures.
# The gate runs with the scenario's thresholds, and again with thresholds calibrated by
# `h2lab gate --calibrate` from the A runs (in-sample: an optimistic figure). A delay is a
# percentage of the median p50 over the first run's cells, the same for every cell.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario="${1:-scenarios/ci-gate.toml}"
rounds="${ROUNDS:-7}"
delays="${DELAYS:-5 10 20}"
out="${OUT:-reports/bench-gate-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"

cargo build --release -q -p h2lab -p sut
h2lab=target/release/h2lab

run() { # NAME [DELAY]
  local name=$1 delay=${2:-}
  if [ "${REUSE:-0}" = 1 ] && [ -f "$out/$name/manifest.json" ]; then
    echo "  kept $name"
    return
  fi
  rm -rf "${out:?}/$name"
  if [ -n "$delay" ]; then
    SUT_EXTRA_LATENCY="$delay" "$h2lab" run -q --out "$out/$name" "$scenario" >/dev/null
  else
    env -u SUT_EXTRA_LATENCY "$h2lab" run -q --out "$out/$name" "$scenario" >/dev/null
  fi
  echo "  ran $name${delay:+ (+$delay at every edge)}"
}

echo "bench-gate: $scenario, $rounds rounds, delays ${delays// /% }% of the baseline p50 -> $out"
run a1
# The baseline p50: median over the first A run's cells and repetitions.
p50_us=$(python3 - "$out/a1" <<'EOF'
import json, sys, pathlib, statistics
d = pathlib.Path(sys.argv[1])
vals = [json.loads(p.read_text())["latency_us"]["p50"] for p in d.glob("cells/*/*/result.json")]
print(statistics.median(vals))
EOF
)
declare -A delay_of
for pct in $delays; do
  delay_of[$pct]="$(python3 -c "print(max(1, round($p50_us * $pct / 100)))")us"
done
echo "  baseline p50 ${p50_us} us; delays: $(for p in $delays; do printf '+%s%%=%s ' "$p" "${delay_of[$p]}"; done)"
for r in $(seq 1 "$rounds"); do
  [ "$r" -gt 1 ] && run "a$r"
  for pct in $delays; do run "b${pct}_$r" "${delay_of[$pct]}"; done
done

aa_dirs=()
for r in $(seq 1 "$rounds"); do aa_dirs+=("$out/a$r"); done
"$h2lab" gate --calibrate "${aa_dirs[@]}" --json "$out/calibration.json" >"$out/calibration.txt"

gate() { # BASE CAND TAG [FLAGS]: exit 0 pass, 1 fail; anything else is an error
  local code=0
  "$h2lab" gate --baseline "$1" --candidate "$2" --json "$out/gates/$3.json" "${@:4}" \
    >"$out/gates/$3.md" 2>"$out/gates/$3.err" || code=$?
  # Refused (exit 2: e.g. a cell generator-bound in most repetitions): not a trial, counted.
  if [ "$code" -gt 1 ]; then
    echo "$3 $(tail -1 "$out/gates/$3.err")" >>"$out/gates/refused.txt"
  fi
  return 0
}
rm -rf "${out:?}/gates"
mkdir -p "$out/gates"
for mode in default calibrated; do
  extra=()
  [ "$mode" = calibrated ] && extra=(--calibration "$out/calibration.json")
  for i in $(seq 1 "$rounds"); do
    for j in $(seq 1 "$rounds"); do
      [ "$i" -lt "$j" ] && gate "$out/a$i" "$out/a$j" "$mode.aa.$i.$j" "${extra[@]}"
      for pct in $delays; do
        gate "$out/a$i" "$out/b${pct}_$j" "$mode.b$pct.$i.$j" "${extra[@]}"
      done
    done
  done
done

python3 - "$out" "$delays" <<'EOF'
import json, sys, pathlib, collections
out, delays = pathlib.Path(sys.argv[1]), sys.argv[2].split()
metrics = ["rps", "p50", "p99", "p99.9", "error_rate", "slo"]
def rates(mode, kind, near):
    files = sorted((out / "gates").glob(f"{mode}.{kind}.*.json"))
    # near: A/A pairs of consecutive rounds, (A, B) pairs of one round: no drift between.
    if near:
        def ij(f):
            i, j = f.name.split(".")[-3:-1]
            return int(i), int(j)
        files = [f for f in files if (ij(f)[1] - ij(f)[0] == 1 if kind == "aa" else ij(f)[0] == ij(f)[1])]
    fail = collections.Counter(); incon = 0; failed = 0
    for f in files:
        v = json.loads(f.read_text())
        failed += not v["pass"]
        incon += bool(v["inconclusive"])
        for m in {m for _, m in v["regressed"]}:
            fail[m] += 1
        fail["slo"] += any(not s["ok"] for s in v["slos"])
    n = len(files)
    return n, failed, incon, fail
print()
for mode, near in [("default", False), ("default", True), ("calibrated", False), ("calibrated", True)]:
    title = "scenario thresholds" if mode == "default" else "thresholds from --calibrate (in-sample)"
    which = "pairs adjacent in time" if near else "all pairs"
    print(f"gate with {title}, {which}: share of pairs failing, and per metric regressed (slo: an SLO not met)")
    print(f"  {'pairs':<18}{'n':>4}{'gate fails':>12}" + "".join(f"{m:>12}" for m in metrics) + f"{'inconclusive':>14}")
    for kind, label in [("aa", "A/A (false)")] + [(f"b{p}", f"+{p}% p50 (caught)") for p in delays]:
        n, failed, incon, fail = rates(mode, kind, near)
        if n == 0:
            continue
        pct = lambda k: f"{100 * k / n:.0f}%"
        print(f"  {label:<18}{n:>4}{pct(failed):>12}" + "".join(f"{pct(fail[m]):>12}" for m in metrics) + f"{pct(incon):>14}")
    print()
refused = out / "gates" / "refused.txt"
if refused.exists():
    lines = refused.read_text().splitlines()
    print(f"{len(lines)} pair(s) refused by the gate (not counted above; see {refused}):")
    for l in lines[:3]:
        print("  " + l[:200])
    print()
print((out / "calibration.txt").read_text())
EOF
