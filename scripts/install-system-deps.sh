#!/usr/bin/env bash
# System packages the build and the tests need, installed only when missing (Debian/Ubuntu):
# a C compiler and Python headers for the Cython core, make, nginx and mosquitto (the MQTT
# broker) for the functional tests, chromium for the HTML report's test (headless,
# offline), wrk for the benchmarks (optional). Uses sudo when not root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

missing=()
have nginx || missing+=(nginx-light)
have chromium || missing+=(chromium)
have mosquitto || missing+=(mosquitto)
have make || missing+=(make)
have gcc || missing+=(gcc)
[ -e /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)   # TLS in the core
python3 - <<'PY' || missing+=(python3-dev)
import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)
PY

if [ "${#missing[@]}" -gt 0 ]; then
    if ! have apt-get; then
        echo "install-system-deps: please install: ${missing[*]}" >&2
        exit 1
    fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! have wrk && have apt-get; then
    $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1 \
        || echo "install-system-deps: wrk not installed (only the benchmarks use it)" >&2
fi
