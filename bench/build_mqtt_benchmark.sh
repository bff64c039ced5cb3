#!/bin/sh
# Builds krylovsk/mqtt-benchmark (Go, paho) offline for bench/mqtt_bench.py, outside the
# repository: nothing of it is ever committed here.
#
#   sh bench/build_mqtt_benchmark.sh [OUT_DIR]        (default /tmp/mqtt-benchmark-build)
#
# The binary lands in OUT_DIR/mqtt-benchmark. Needs Debian's Go toolchain and Go library
# packages (see bench/README.md, "Building mqtt-benchmark"):
#   apt-get install -y golang-go golang-github-gorilla-websocket-dev \
#       golang-golang-x-net-dev golang-golang-x-sync-dev
# and three git repositories (bare mirrors or clones), given by these variables:
#   MB_GIT      krylovsk/mqtt-benchmark    (built at MB_REF, default HEAD)
#   PAHO_GIT    eclipse/paho.mqtt.golang   (built at v1.4.1, the version its go.mod pins;
#               Debian's golang-github-eclipse-paho.mqtt.golang-dev is 1.1.1, too old)
#   GOSTATS_GIT GaryBoone/GoStats          (at 1993eafbef57, its go.mod's pseudo-version;
#               no Debian package; it has no go.mod, so a minimal one is written)
# The module proxy is never asked: a copy of mqtt-benchmark's go.mod gets `replace`
# directives pointing at those trees and at Debian's sources in /usr/share/gocode/src,
# and the build runs with GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off.
set -eu

OUT=${1:-/tmp/mqtt-benchmark-build}
MIRRORS=${MIRRORS:-/work/.mirror}
MB_GIT=${MB_GIT:-$MIRRORS/krylovsk+mqtt-benchmark/repo}
MB_REF=${MB_REF:-HEAD}
PAHO_GIT=${PAHO_GIT:-$MIRRORS/eclipse+paho.mqtt.golang/repo}
GOSTATS_GIT=${GOSTATS_GIT:-$MIRRORS/GaryBoone+GoStats/repo}
GOCODE=/usr/share/gocode/src

for d in "$GOCODE/github.com/gorilla/websocket" "$GOCODE/golang.org/x/net" \
         "$GOCODE/golang.org/x/sync"; do
    [ -d "$d" ] || { echo "missing $d (apt-get install the Debian Go packages)" >&2; exit 1; }
done

rm -rf "$OUT"
mkdir -p "$OUT/src" "$OUT/deps/paho" "$OUT/deps/GoStats"
git --git-dir="$MB_GIT" archive "$MB_REF" | tar -x -C "$OUT/src"
git --git-dir="$PAHO_GIT" archive v1.4.1 | tar -x -C "$OUT/deps/paho"
git --git-dir="$GOSTATS_GIT" archive 1993eafbef57 | tar -x -C "$OUT/deps/GoStats"
printf 'module github.com/GaryBoone/GoStats\n\ngo 1.12\n' > "$OUT/deps/GoStats/go.mod"

cd "$OUT/src"
go mod edit \
    -replace "github.com/GaryBoone/GoStats=$OUT/deps/GoStats" \
    -replace "github.com/eclipse/paho.mqtt.golang=$OUT/deps/paho" \
    -replace "github.com/gorilla/websocket=$GOCODE/github.com/gorilla/websocket" \
    -replace "golang.org/x/net=$GOCODE/golang.org/x/net" \
    -replace "golang.org/x/sync=$GOCODE/golang.org/x/sync"
GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local go build -o "$OUT/mqtt-benchmark" .
echo "built $OUT/mqtt-benchmark ($(git --git-dir="$MB_GIT" rev-parse --short "$MB_REF"))"
