#!/usr/bin/env bash
# The whole CI use of h2lab: run a scenario, compare with a stored baseline, gate.
#
#   scripts/ci-gate.sh SCENARIO BASELINE_DIR [GATE FLAGS...]
#
# - builds h2lab and sut (release), runs SCENARIO into reports/ci-candidate/;
# - when BASELINE_DIR has no manifest.json yet (first run on main), stores the candidate
#   there and exits 0: the next run has something to compare with;
# - otherwise prints `h2lab compare`, then runs `h2lab gate` (JUnit XML in
#   reports/ci-candidate/junit.xml; Markdown appended to $GITHUB_STEP_SUMMARY when set)
#   and exits with its code: 0 pass, 1 regressed or SLO not met, 2 bad input.
# Run the scenario with >= 5 repetitions for the statistics to speak (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 2 ]]; then
    echo "usage: scripts/ci-gate.sh SCENARIO BASELINE_DIR [h2lab gate flags...]" >&2
    exit 2
fi
scenario=$1 baseline=$2
shift 2
cargo build --release -q -p h2lab -p sut
h2lab=target/release/h2lab
candidate=reports/ci-candidate
rm -rf "$candidate"
"$h2lab" validate "$scenario"
"$h2lab" run -q --out "$candidate" "$scenario"
if [[ ! -f "$baseline/manifest.json" ]]; then
    mkdir -p "$(dirname "$baseline")"
    rm -rf "$baseline"
    cp -r "$candidate" "$baseline"
    echo "ci-gate: no baseline yet; stored this run as $baseline"
    exit 0
fi
"$h2lab" compare "$baseline" "$candidate"
set +e
"$h2lab" gate --baseline "$baseline" --candidate "$candidate" \
    --junit "$candidate/junit.xml" --json "$candidate/gate.json" "$@"
code=$?
set -e
echo "ci-gate: gate exit $code (0 pass, 1 regressed, 2 bad input)"
exit $code
