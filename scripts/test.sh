#!/usr/bin/env bash
# The whole test suite: installs what the tests need (nginx, Apache, HAProxy, curl,
# nghttp2-client, wrk, openssl), then runs every test in a debug build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --workspace --all-targets
RUST_TEST_THREADS="${H2LAB_TEST_THREADS:-2}" cargo test --workspace --all-targets
