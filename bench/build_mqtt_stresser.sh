#!/bin/sh
# Builds inovex/mqtt-stresser (Go, paho) offline for bench/mqtt_bench.py, outside the
# repository: nothing of it is ever committed here.
#
#   sh bench/build_mqtt_stresser.sh [OUT_DIR]          (default /tmp/mqtt-stresser-build)
#
# The binary lands in OUT_DIR/mqtt-stresser. Needs Debian's Go toolchain
# (apt-get install -y golang-go) and one git repository (a bare mirror or a clone):
#   MS_GIT   inovex/mqtt-stresser   (built at MS_REF, default HEAD)
# mqtt-stresser vendors both of its dependencies (vendor/modules.txt: paho.mqtt.golang
# v1.2.0 and golang.org/x/net v0.7.0, the versions its go.mod pins), and its own Makefile
# builds with -mod=vendor: so does this script, with GOPROXY=off GOSUMDB=off. Neither the
# module proxy nor Debian's Go library packages are used (see bench/README.md, "Building
# mqtt-stresser").
set -eu

OUT=${1:-/tmp/mqtt-stresser-build}
MIRRORS=${MIRRORS:-/work/.mirror}
MS_GIT=${MS_GIT:-$MIRRORS/inovex+mqtt-stresser/repo}
MS_REF=${MS_REF:-HEAD}

rm -rf "$OUT"
mkdir -p "$OUT/src"
git --git-dir="$MS_GIT" archive "$MS_REF" | tar -x -C "$OUT/src"
[ -f "$OUT/src/vendor/modules.txt" ] || { echo "no vendor/ in $MS_GIT at $MS_REF" >&2; exit 1; }

cd "$OUT/src"
GOFLAGS=-mod=vendor GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local go build -o "$OUT/mqtt-stresser" .
echo "built $OUT/mqtt-stresser ($(git --git-dir="$MS_GIT" rev-parse --short "$MS_REF"))"
