#!/usr/bin/env bash
# The main job on the embedded servers only (no system packages needed): builds h2lab and
# the servers under test, then runs scenarios/quick.toml (the four deployment topologies
# over TLS with ALPN h2,http/1.1). Results go to reports/<run-id>/.
#
#   scripts/quick.sh                    # same as: h2lab run scenarios/quick.toml
#   scripts/quick.sh --out /tmp/run     # extra flags go to `h2lab run`
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p sut -p h2lab
exec target/release/h2lab run scenarios/quick.toml "$@"
