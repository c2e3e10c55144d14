#!/usr/bin/env bash
# Installs the system packages that the test suite and the benchmarks need.
# Idempotent: packages already present are not downloaded again, and the package index is
# refreshed only when something is missing. Needs root (or sudo) for apt-get.
set -euo pipefail

packages=(
  nginx-light apache2 haproxy   # real reverse proxies under test
  curl nghttp2-client wrk       # independent clients and peer load generators
  openssl ca-certificates       # s_client cross-checks, CA tooling
  procps psmisc                 # ps / pgrep / fuser used by the leak checks
  chromium fonts-dejavu-core    # headless check of the HTML report; fonts for --png
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the proxies as system services on install; the lab runs its own instances
# on OS-chosen ports, so the system ones are stopped to keep port 80 and the CPU free.
for svc in nginx apache2 haproxy; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $sudo systemctl stop "$svc" || true
  fi
  if command -v service >/dev/null; then $sudo service "$svc" stop >/dev/null 2>&1 || true; fi
done
echo "setup: done"
