#!/usr/bin/env bash
# deps.sh: install what building (MODE=build), testing (MODE=test) or fuzzing
# (MODE=fuzz: clang and its libFuzzer runtime) Sluice needs.
# Idempotent and quick when everything is already there: only missing Debian packages
# are installed, and apt-get update runs only if something is missing.
set -euo pipefail

mode="${1:-build}"
cd "$(dirname "$0")/.."

build_pkgs=(gcc make pkg-config librocksdb-dev libmicrohttpd-dev libcjson-dev
            libcurl4-openssl-dev libssl-dev)
test_pkgs=(libcmocka-dev librdkafka-dev kcat python3-confluent-kafka python3-kafka
           python3-pytest iperf3)

case "$mode" in
build) want=("${build_pkgs[@]}") ;;
test)
    want=("${build_pkgs[@]}" "${test_pkgs[@]}")
    command -v node >/dev/null 2>&1 || want+=(nodejs npm)
    ;;
fuzz)
    want=("${build_pkgs[@]}" libcmocka-dev)
    # libFuzzer ships with clang's runtime; only ask for packages if it is missing.
    if ! clang -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null | grep -q /; then
        want+=(clang)
        # Debian splits the runtime out of clang 14 (and later) into libclang-rt-N-dev.
        v="$(clang -dumpversion 2>/dev/null | cut -d. -f1)"
        if [ -n "$v" ] && apt-cache show "libclang-rt-$v-dev" >/dev/null 2>&1; then
            want+=("libclang-rt-$v-dev")
        fi
    fi
    ;;
*) echo "usage: $0 build|test|fuzz" >&2; exit 2 ;;
esac

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)

missing=()
for p in "${want[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
    [ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "deps.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ "$mode" = test ] && [ ! -d tests/.deps/node_modules/kafkajs ]; then
    echo "deps.sh: installing kafkajs@2.2.4 into tests/.deps"
    mkdir -p tests/.deps
    npm install --no-audit --no-fund --prefix tests/.deps kafkajs@2.2.4
fi

# The S3 server for dataset tests: a SigV4-checking fork of s3rver (tests/s3/s3rver.js).
if [ "$mode" = test ] && [ ! -d tests/.deps/node_modules/@20minutes/s3rver ]; then
    echo "deps.sh: installing @20minutes/s3rver@4.0.4 into tests/.deps"
    mkdir -p tests/.deps
    npm install --no-audit --no-fund --prefix tests/.deps @20minutes/s3rver@4.0.4
fi

# librdkafka 2.15.1 with the preview KIP-932 share consumer (tests/share/).
if [ "$mode" = test ]; then
    tests/share/build_rdk215.sh
fi
