#!/usr/bin/env bash
# The whole CI use of h2lab: measure a candidate against a baseline, gate.
#
#   scripts/ci-gate.sh SCENARIO --rev REV [GATE FLAGS...]      (recommended)
#   scripts/ci-gate.sh SCENARIO BASELINE_DIR [GATE FLAGS...]
#
# --rev REV: builds the servers under test (sut) of git revision REV in a worktree and
#   measures them and this checkout's side by side, interleaved cell by cell in one run
#   (`h2lab run --variant base --variant candidate`) into reports/ci-gate/{base,candidate}.
#   On a shared machine this is the reliable way: separate runs minutes apart differ by
#   more than most thresholds (scripts/bench-gate.sh measures both ways). REV's sut must
#   take the flags this checkout's h2lab gives it.
# BASELINE_DIR: compares with a stored run. When it has no manifest.json yet (first run on
#   main), the candidate is stored there and the script exits 0.
# Then prints `h2lab compare` and runs `h2lab gate` (JUnit XML and JSON beside the
# candidate; Markdown appended to $GITHUB_STEP_SUMMARY when set), and exits with its code:
# 0 pass, 1 regressed or SLO not met, 2 bad input.
# Run the scenario with >= 5 repetitions for the statistics to speak (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 2 ]]; then
    echo "usage: scripts/ci-gate.sh SCENARIO (--rev REV | BASELINE_DIR) [h2lab gate flags...]" >&2
    exit 2
fi
scenario=$1
shift
cargo build --release -q -p h2lab -p sut
h2lab=target/release/h2lab
"$h2lab" validate "$scenario"
if [[ $1 == --rev ]]; then
    [[ $# -ge 2 ]] || { echo "ci-gate: --rev needs a revision" >&2; exit 2; }
    rev=$2
    shift 2
    git rev-parse --verify -q "$rev^{commit}" >/dev/null ||
        { echo "ci-gate: --rev $rev: not a revision of this repository" >&2; exit 2; }
    tree=$(mktemp -d)
    trap 'git worktree remove --force "$tree" >/dev/null 2>&1 || true; rm -rf "$tree"' EXIT
    git worktree add -q --detach "$tree" "$rev"
    echo "ci-gate: building the sut of $rev"
    cargo build --release -q -p sut --manifest-path "$tree/Cargo.toml" --target-dir target/ci-gate-base
    out=reports/ci-gate
    rm -rf "$out"
    "$h2lab" run -q --out "$out" --variant base --variant candidate \
        --variant-sut "base:target/ci-gate-base/release/sut" "$scenario"
    baseline=$out/base candidate=$out/candidate
else
    baseline=$1
    shift
    candidate=reports/ci-candidate
    rm -rf "$candidate"
    "$h2lab" run -q --out "$candidate" "$scenario"
    if [[ ! -f "$baseline/manifest.json" ]]; then
        mkdir -p "$(dirname "$baseline")"
        rm -rf "$baseline"
        cp -r "$candidate" "$baseline"
        echo "ci-gate: no baseline yet; stored this run as $baseline"
        exit 0
    fi
fi
"$h2lab" compare "$baseline" "$candidate"
set +e
"$h2lab" gate --baseline "$baseline" --candidate "$candidate" \
    --junit "$candidate/junit.xml" --json "$candidate/gate.json" "$@"
code=$?
set -e
echo "ci-gate: gate exit $code (0 pass, 1 regressed, 2 bad input)"
exit $code
