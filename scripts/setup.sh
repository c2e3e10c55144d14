#!/usr/bin/env bash
# Installs the system packages that the test suite and the benchmarks need, the pinned
# PyPI programs of scripts/requirements-tests.txt into .tools/venv, and the pinned HTTP/2
# conformance suite (httpwg-cli, from crates.io) into cargo's bin directory.
# Idempotent: packages already present are not downloaded again, and the package index is
# refreshed only when something is missing. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned: scripts/bench-servers.sh quotes its figures against this build.
H2O_VERSION=2.2.5+dfsg2-7
packages=(
  nginx-light apache2 haproxy   # real reverse proxies under test
  "h2o=${H2O_VERSION}"          # the fastest open-source HTTP/2 server: the edge's peer
  curl nghttp2-client wrk       # independent clients and peer load generators
  openssl ca-certificates       # s_client cross-checks, CA tooling
  procps psmisc                 # ps / pgrep / fuser used by the leak checks
  chromium fonts-dejavu-core    # headless check of the HTML report; fonts for --png
  python3 python3-venv          # real apps under test: http.server, hypercorn (PyPI)
)

missing=()
for p in "${packages[@]}"; do
  name=${p%%=*}
  want=${p#*=}; [ "$want" = "$p" ] && want=""
  if ! dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q 'install ok installed' ||
     { [ -n "$want" ] && [ "$(dpkg-query -W -f='${Version}' "$name")" != "$want" ]; }; then
    missing+=("$p")
  fi
done

# The PyPI programs, in a virtual environment of the checkout (Debian's Python refuses
# installs into the system's site-packages).
install_python_tools() {
  local venv=.tools/venv req=scripts/requirements-tests.txt
  local stamp="$venv/.requirements"
  if [ -x "$venv/bin/hypercorn" ] && cmp -s "$req" "$stamp"; then
    echo "setup: python tools present ($venv)"
    return
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
  echo "setup: python tools installed in $venv: $("$venv/bin/pip" list --format=freeze 2>/dev/null | tr "\n" " ")"
}

# The HTTP/2 conformance suite `h2lab conform` and [conformance] run: RFC 9113 cases.
HTTPWG_VERSION=0.2.5
install_conformance_suite() {
  if cargo install --list 2>/dev/null | grep -q "^httpwg-cli v${HTTPWG_VERSION}:"; then
    echo "setup: httpwg-cli ${HTTPWG_VERSION} present"
    return
  fi
  echo "setup: installing httpwg-cli ${HTTPWG_VERSION} (cargo install, about a minute)"
  cargo install -q httpwg-cli --version "${HTTPWG_VERSION}" --locked
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  install_python_tools
  install_conformance_suite
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
for svc in nginx apache2 haproxy h2o; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $sudo systemctl stop "$svc" || true
  fi
  if command -v service >/dev/null; then $sudo service "$svc" stop >/dev/null 2>&1 || true; fi
done
install_python_tools
install_conformance_suite
echo "setup: done"
